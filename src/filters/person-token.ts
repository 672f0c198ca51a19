/**
 * CC12M replaces person names with `<PERSON>`. `replacePersonTokens` rewrites them
 * deterministically (open-muse picks a random synonym; we do not, so reruns give the same text):
 * a run of tokens joined by commas, whitespace or "and" ("<PERSON> and <PERSON>",
 * "<PERSON>, <PERSON> and <PERSON>") becomes "people", any other token "a person". Matching is
 * case-insensitive (open-muse matches the lower-case form, the TSV has upper case).
 */
/** What a caption filter does with a `<PERSON>` token (pipeline `filters.caption.person_token`): the one list. */
export const PERSON_TOKEN_MODES = ['keep', 'replace', 'drop'] as const;
export type PersonToken = (typeof PERSON_TOKEN_MODES)[number];

const RUN = /<person>(?:[\s,]*(?:and)?[\s,]*<person>)+/giu;
const ONE = /<person>/giu;
const ANY = /<person>/iu;

export function hasPersonToken(text: string): boolean {
  return ANY.test(text);
}

export function replacePersonTokens(text: string): string {
  return text.replace(RUN, ' people ').replace(ONE, ' a person ');
}
