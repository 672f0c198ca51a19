import type { CaptionFilterConfig } from '../pipeline/config-types.ts';
import { createBannedMatcher, loadBannedWords } from './banned-words.ts';
import { checkLanguageCodes, detectLanguage } from './language.ts';
import { hasPersonToken, replacePersonTokens } from './person-token.ts';
import { charCount, cleanCaption, topWordCount, words } from './text.ts';

export type CaptionVerdict = { ok: true; caption: string | null } | { ok: false; rule: string; reason: string };

/** Does the config hold any rule that can reject a caption? (`person_token: replace` only rewrites.) */
export function hasCaptionRules(cfg: CaptionFilterConfig): boolean {
  return (
    cfg.min_chars !== undefined ||
    cfg.max_chars !== undefined ||
    cfg.min_words !== undefined ||
    cfg.max_words !== undefined ||
    cfg.max_word_repetition !== undefined ||
    (cfg.languages !== undefined && cfg.languages.length > 0) ||
    cfg.banned_words_file !== undefined ||
    cfg.person_token === 'drop'
  );
}

/**
 * Builds the caption check. Whitespace is collapsed first and `<PERSON>` handled; the length, word,
 * repetition, banned-word and language rules then run, in that order, on the caption that will be
 * stored, and the first failure is returned. Lengths count Unicode code points; a word is a
 * whitespace-separated token. The minimums and maximums are inclusive (length == min passes).
 *
 * Word repetition = count of the most frequent word (lower-cased) / number of words. It is only
 * judged when the caption has at least ceil(1 / max_word_repetition) words: on shorter captions even
 * all-different words exceed the fraction, so the number says nothing about repetition.
 */
export function createCaptionFilter(
  cfg: CaptionFilterConfig,
  baseDir: string,
): (caption: string | null) => CaptionVerdict {
  const checking = hasCaptionRules(cfg);
  const banned = cfg.banned_words_file ? createBannedMatcher(loadBannedWords(cfg.banned_words_file, baseDir)) : null;
  const languages = cfg.languages && cfg.languages.length > 0 ? cfg.languages : null;
  if (languages) checkLanguageCodes(languages);
  const rep = cfg.max_word_repetition;
  const repMinWords = rep !== undefined && rep > 0 ? Math.ceil(1 / rep - 1e-9) : Infinity;

  return (raw) => {
    const fail = (rule: string, reason: string): CaptionVerdict => ({ ok: false, rule, reason });
    let caption = raw === null ? '' : cleanCaption(raw);
    if (caption === '') {
      return checking
        ? fail('missing_caption', raw === null ? 'row has no caption' : 'caption is blank')
        : { ok: true, caption: null };
    }

    if (hasPersonToken(caption)) {
      if (cfg.person_token === 'drop') return fail('person_token', 'caption contains <PERSON>');
      if (cfg.person_token === 'replace') caption = cleanCaption(replacePersonTokens(caption));
    }

    const chars = charCount(caption);
    if (cfg.min_chars !== undefined && chars < cfg.min_chars)
      return fail('min_chars', `caption has ${chars} chars < ${cfg.min_chars}`);
    if (cfg.max_chars !== undefined && chars > cfg.max_chars)
      return fail('max_chars', `caption has ${chars} chars > ${cfg.max_chars}`);

    const ws = words(caption);
    if (cfg.min_words !== undefined && ws.length < cfg.min_words)
      return fail('min_words', `caption has ${ws.length} words < ${cfg.min_words}`);
    if (cfg.max_words !== undefined && ws.length > cfg.max_words)
      return fail('max_words', `caption has ${ws.length} words > ${cfg.max_words}`);

    if (rep !== undefined && ws.length >= repMinWords) {
      const top = topWordCount(ws);
      const fraction = top.count / ws.length;
      if (fraction > rep) {
        return fail(
          'max_word_repetition',
          `word '${top.word}' is ${top.count} of ${ws.length} words (${fraction.toFixed(3)} > ${rep})`,
        );
      }
    }

    if (banned) {
      const hit = banned(caption);
      if (hit !== null) return fail('banned_words', `caption contains banned '${hit}'`);
    }

    if (languages) {
      const lang = detectLanguage(caption);
      if (!languages.includes(lang)) {
        const why = lang === '' ? 'language not detected' : `language '${lang}'`;
        return fail('language', `${why}, accepted [${languages.join(', ')}]`);
      }
    }
    return { ok: true, caption };
  };
}
