// Tokenizers: the real CLIP BPE tokenizer.json against transformers' CLIPTokenizer (47 cases, exact ids),
// a Unigram (T5-style) tokenizer.json written here with ids known by construction, and the byte tokenizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { ByteTokenizer, loadClipTokenizer, loadT5Tokenizer } from '../../src/models/text/tokenizer.ts';
import { fixturePath } from '../helpers/fixtures.ts';

const FIX = fixturePath('tokenizers');

interface ClipCase {
  text: string;
  input_ids: number[];
  attention_mask: number[];
  raw_ids: number[];
}

test('CLIP tokenizer reproduces all fixture cases exactly (input_ids, attention_mask, raw_ids)', async () => {
  const tok = await loadClipTokenizer(path.join(FIX, 'clip'));
  assert.equal(tok.padId, 49407);
  assert.equal(tok.eosId, 49407);
  assert.deepEqual(tok.prefix, [49406]);
  assert.deepEqual(tok.suffix, [49407]);
  const { cases } = JSON.parse(await fsp.readFile(path.join(FIX, 'clip-cases.json'), 'utf8')) as { cases: ClipCase[] };
  assert.equal(cases.length, 47);
  const batch = tok.batch(cases.map((c) => c.text));
  assert.equal(batch.length, 77);
  let truncated = 0;
  cases.forEach((c, i) => {
    const label = JSON.stringify(c.text).slice(0, 60);
    assert.deepEqual(tok.rawIds(c.text), c.raw_ids, `raw_ids of ${label}`);
    assert.deepEqual(Array.from(batch.ids.subarray(i * 77, (i + 1) * 77)), c.input_ids, `input_ids of ${label}`);
    assert.deepEqual(
      Array.from(batch.mask.subarray(i * 77, (i + 1) * 77)),
      c.attention_mask,
      `attention_mask of ${label}`,
    );
    if (c.raw_ids.length > 77) truncated++;
  });
  assert.ok(truncated >= 1, 'the fixture has a truncated case');
});

/** A Unigram tokenizer.json in the shape of T5's (Metaspace, `</s>` appended), ids known by construction. */
function unigramJson() {
  const pieces: [string, number][] = [
    ['<pad>', 0],
    ['</s>', 0],
    ['<unk>', 0],
    ['▁', -2],
    ['▁a', -3],
    ['▁cat', -4],
    ['▁c', -6],
    ['at', -6],
    ['▁photo', -5],
    ['▁of', -4],
    ['s', -5],
    ['a', -7],
    ['c', -7],
    ['t', -7],
    ['o', -7],
    ['p', -7],
    ['h', -7],
    ['f', -7],
  ];
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab: pieces, byte_fallback: false },
  };
}

test('T5 path: a Unigram tokenizer.json appends </s>, pads with 0 to the longest row, truncates before </s>', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'muse-tok-'));
  try {
    await fsp.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(unigramJson()));
    await fsp.writeFile(
      path.join(dir, 'tokenizer_config.json'),
      JSON.stringify({ eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' }),
    );
    const tok = await loadT5Tokenizer(dir, { maxLength: 6 });
    assert.equal(tok.padId, 0);
    assert.equal(tok.eosId, 1);
    assert.deepEqual(tok.prefix, []);
    assert.deepEqual(tok.suffix, [1]);
    assert.deepEqual(tok.contentIds('a photo of a cat a cat'), [4, 8, 9, 4, 5, 4, 5]);
    assert.deepEqual(tok.encode('a photo of a cat a cat'), [4, 8, 9, 4, 5, 1]);
    assert.deepEqual(tok.encode('a cat'), [4, 5, 1]);
    assert.deepEqual(tok.encode('a cats'), [4, 5, 10, 1]);
    // 'x' is not in the vocabulary: unk (the lone '▁' piece before it).
    assert.deepEqual(tok.encode('x'), [3, 2, 1]);
    const batch = tok.batch(['a cat', 'a photo of a cat']);
    assert.equal(batch.length, 6);
    assert.deepEqual(Array.from(batch.ids), [4, 5, 1, 0, 0, 0, 4, 8, 9, 4, 5, 1]);
    assert.deepEqual(Array.from(batch.mask), [1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(batch.lengths, [3, 6]);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('byte tokenizer: ids = UTF-8 bytes + 3, EOS 1 appended, pad 0, truncation keeps EOS', () => {
  const tok = new ByteTokenizer({ maxLength: 8 });
  assert.deepEqual(tok.encode('hi'), [104 + 3, 105 + 3, 1]);
  assert.deepEqual(tok.encode('é'), [0xc3 + 3, 0xa9 + 3, 1]);
  assert.deepEqual(tok.encode(''), [1]);
  assert.deepEqual(tok.encode('abcdefghij'), [100, 101, 102, 103, 104, 105, 106, 1]);
  assert.equal(new ByteTokenizer().decode(new ByteTokenizer().encode('naïve 猫')), 'naïve 猫');
  const b = tok.batch(['ab', 'abcd']);
  assert.deepEqual(Array.from(b.ids), [100, 101, 1, 0, 0, 100, 101, 102, 103, 1]);
  assert.deepEqual(Array.from(b.mask), [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
  assert.equal(tok.batch(['ab'], { padding: 'max_length' }).length, 8);
});
