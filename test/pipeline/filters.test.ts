import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CaptionFilterConfig, MetadataRule } from '../../src/pipeline/config-types.ts';
import type { SourceRecord } from '../../src/sources/record.ts';
import {
  createRecordFilter,
  loadLanguageDetector,
  replacePersonTokens,
  type FilterVerdict,
} from '../../src/filters/index.ts';

function record(caption: string | null, meta: Record<string, unknown> = {}): SourceRecord {
  return { row: 0, file: 'input.parquet', fileRow: 0, url: 'https://example.com/a.jpg', caption, meta };
}

// Language rules need the detector; loading it is the async part of creating a filter.
await loadLanguageDetector();

function filter(caption: CaptionFilterConfig = {}, metadata: MetadataRule[] = [], baseDir = tmpdir()) {
  return createRecordFilter({ caption, metadata }, { baseDir });
}

function rejected(v: FilterVerdict, rule: string, reason?: RegExp) {
  assert.ok(!v.ok, `expected rejection by ${rule}, got ${JSON.stringify(v)}`);
  assert.equal(v.rule, rule, v.reason);
  if (reason) assert.match(v.reason, reason);
}

function passed(v: FilterVerdict, caption?: string | null) {
  assert.ok(v.ok, `expected pass, got ${JSON.stringify(v)}`);
  if (caption !== undefined) assert.equal(v.caption, caption);
}

// ---- metadata ----

const laionSimilarity: MetadataRule = {
  name: 'clip_similarity',
  column: 'similarity',
  min: 0.28,
  valid_min: -1,
  valid_max: 1,
};

test('LAION similarity: corrupt 6016 rejected as such, min is inclusive, strings parse', () => {
  const f = filter({}, [laionSimilarity]);
  rejected(f(record('x', { similarity: 6016 })), 'clip_similarity', /^similarity 6016 outside valid range \[-1, 1\]$/);
  rejected(f(record('x', { similarity: -1.5 })), 'clip_similarity', /outside valid range/);
  rejected(f(record('x', { similarity: 0.279 })), 'clip_similarity', /^similarity 0.279 < min 0.28$/);
  passed(f(record('x', { similarity: 0.28 })));
  passed(f(record('x', { similarity: '0.31' })));
  passed(f(record('x', { similarity: 1 })));
  rejected(f(record('x', { similarity: 'n/a' })), 'clip_similarity', /not a number/);
  passed(f(record('x', {})), 'x'); // missing: keep is the default
});

test('LAION NSFW tag: reject_values', () => {
  const f = filter({}, [{ name: 'nsfw_tag', column: 'NSFW', reject_values: ['NSFW', 'UNSURE'] }]);
  rejected(f(record('x', { NSFW: 'UNSURE' })), 'nsfw_tag', /UNSURE/);
  rejected(f(record('x', { NSFW: 'NSFW' })), 'nsfw_tag');
  rejected(f(record('x', { NSFW: 'nsfw ' })), 'nsfw_tag');
  passed(f(record('x', { NSFW: 'UNLIKELY' })));
  passed(f(record('x', { NSFW: null })));
});

test('COYO watermark_score and nsfw score maxima are inclusive; bigint values work', () => {
  const f = filter({}, [
    { name: 'watermark', column: 'watermark_score', max: 0.5 },
    { name: 'nsfw', column: 'nsfw_score_opennsfw2', max: 0.5 },
    { name: 'min_side', column: 'width', min: 200 },
  ]);
  passed(f(record('x', { watermark_score: 0.5, nsfw_score_opennsfw2: 0.5, width: 200n })));
  rejected(
    f(record('x', { watermark_score: 0.51, nsfw_score_opennsfw2: 0.1 })),
    'watermark',
    /^watermark_score 0.51 > max 0.5$/,
  );
  rejected(f(record('x', { watermark_score: 0.1, nsfw_score_opennsfw2: 0.9 })), 'nsfw');
  rejected(f(record('x', { width: 199n })), 'min_side', /width 199 < min 200/);
  // both failing: the first rule in config order wins
  rejected(f(record('x', { watermark_score: 0.9, nsfw_score_opennsfw2: 0.9 })), 'watermark');
});

test('punsafe missing: keep vs reject', () => {
  const rule: MetadataRule = { name: 'unsafe', column: 'punsafe', max: 0.5 };
  const keep = filter({}, [{ ...rule, missing: 'keep' }]);
  const reject = filter({}, [{ ...rule, missing: 'reject' }]);
  for (const meta of [{}, { punsafe: null }, { punsafe: '' }]) {
    passed(keep(record('x', meta)));
    rejected(reject(record('x', meta)), 'unsafe', /punsafe is missing/);
  }
  rejected(keep(record('x', { punsafe: 0.7 })), 'unsafe');
  passed(reject(record('x', { punsafe: 0.2 })));
});

test('metadata rules run before caption rules', () => {
  const f = filter({ min_chars: 5 }, [laionSimilarity]);
  rejected(f(record('ab', { similarity: 0.1 })), 'clip_similarity');
  rejected(f(record('ab', { similarity: 0.5 })), 'min_chars');
});

// ---- caption ----

test('captions are whitespace-cleaned; missing captions', () => {
  passed(filter()(record('  a\tdog \n\u00a0on   the beach ')), 'a dog on the beach');
  passed(filter()(record(null)), null);
  rejected(filter({ min_chars: 1 })(record(null)), 'missing_caption');
  rejected(filter({ max_words: 10 })(record(' \n ')), 'missing_caption');
  passed(filter({ person_token: 'replace' })(record(null)), null); // replace alone rejects nothing
});

test('min_chars / max_chars at the boundary (code points, after cleaning)', () => {
  const f = filter({ min_chars: 5, max_chars: 10 });
  rejected(f(record('abcd')), 'min_chars', /^caption has 4 chars < 5$/);
  rejected(f(record('  a    b  ')), 'min_chars', /3 chars/);
  passed(f(record('abcde')));
  passed(f(record('😀😀😀😀😀')));
  passed(f(record('abcdefghij')));
  rejected(f(record('abcdefghijk')), 'max_chars', /^caption has 11 chars > 10$/);
});

test('min_words / max_words at the boundary', () => {
  const f = filter({ min_words: 3, max_words: 5 });
  rejected(f(record('two words')), 'min_words', /^caption has 2 words < 3$/);
  passed(f(record('three  little words')));
  passed(f(record('one two three four five')));
  rejected(f(record('one two three four five six')), 'max_words', /6 words > 5/);
});

test('max_word_repetition: fraction of the most frequent word, judged from 1/max words', () => {
  const f = filter({ max_word_repetition: 0.2 });
  rejected(f(record('Shoes shoes cheap SHOES buy')), 'max_word_repetition', /'shoes' is 3 of 5 words/);
  passed(f(record('one two three four five'))); // 1/5 = 0.2 exactly
  passed(f(record('a dog and a cat on the sofa near x'))); // 2/10
  rejected(f(record('a dog and a cat on a sofa near x')), 'max_word_repetition', /'a' is 3 of 10/);
  passed(f(record('dog dog'))); // 2 words < 1/0.2: not judged
  rejected(filter({ max_word_repetition: 0.5 })(record('dog dog dog')), 'max_word_repetition');
});

test('language: English, German and French captions classified', () => {
  const en = 'A dog running on the beach at sunset with the waves behind it';
  const de = 'Ein Hund läuft bei Sonnenuntergang am Strand, dahinter die Wellen';
  const fr = 'Un chien qui court sur la plage au coucher du soleil avec les vagues';
  const english = filter({ languages: ['en'] });
  passed(english(record(en)), en);
  rejected(english(record(de)), 'language', /'de'/);
  rejected(english(record(fr)), 'language', /'fr'/);
  const deFr = filter({ languages: ['de', 'fr'] });
  passed(deFr(record(de)));
  passed(deFr(record(fr)));
  rejected(deFr(record(en)), 'language', /'en', accepted \[de, fr\]/);
  rejected(english(record('12345 !!!')), 'language', /not detected/);
  assert.throws(() => filter({ languages: ['en', 'xx'] }), /'xx' not supported/);
});

test('banned words: whole words and phrases, case-insensitive; file errors are clear', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'muse-filters-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'banned.txt'), '# comment line\n\nass\n  bad phrase  \r\nüble\n');
  const f = filter({ banned_words_file: 'banned.txt' }, [], dir);
  passed(f(record('class photo of the bass section')));
  passed(f(record('a badphrase is not the phrase')));
  passed(f(record('comment line')), 'comment line'); // '#' lines are comments, not entries
  rejected(f(record('kick ASS!')), 'banned_words', /'ASS'/);
  rejected(f(record('a Bad   Phrase here')), 'banned_words', /'Bad Phrase'/);
  rejected(f(record('eine üble Sache')), 'banned_words');
  passed(f(record('eine üblere Sache')));
  assert.throws(
    () => filter({ banned_words_file: 'missing.txt' }, [], dir),
    (err: Error) => err.message.includes(join(dir, 'missing.txt')),
  );
});

test('CC12M <PERSON>: keep, replace, drop', () => {
  const cap = '<PERSON> and <PERSON> at the beach with <PERSON>';
  passed(filter({ person_token: 'keep' })(record(cap)), cap);
  passed(filter({ person_token: 'replace' })(record(cap)), 'people at the beach with a person');
  rejected(filter({ person_token: 'drop' })(record(cap)), 'person_token');
  passed(filter({ person_token: 'drop' })(record('a person at the beach')));
  assert.equal(replacePersonTokens('photo of <PERSON>, <PERSON> and <person>.'), 'photo of  people .');
  assert.equal(replacePersonTokens('<PERSON> smiling'), ' a person  smiling');
  // the replaced caption is what the other rules see
  rejected(filter({ person_token: 'replace', max_words: 3 })(record('<PERSON> smiling here')), 'max_words', /4 words/);
});
