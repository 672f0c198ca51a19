/** Caption text helpers shared by the caption rules. */

/** Collapses every run of Unicode whitespace to one space and trims (COYO's normalisation). */
export function cleanCaption(text: string): string {
  return text.replace(/\s+/gu, ' ').trim();
}

/** Length in Unicode code points (an emoji or a CJK character counts 1, not 2 UTF-16 units). */
export function charCount(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** Words of a cleaned caption: its whitespace-separated tokens. */
export function words(cleaned: string): string[] {
  return cleaned === '' ? [] : cleaned.split(' ');
}

/** Count of the most frequent word, compared lower-cased. */
export function topWordCount(ws: string[]): { word: string; count: number } {
  const counts = new Map<string, number>();
  let best = { word: '', count: 0 };
  for (const w of ws) {
    const key = w.toLowerCase();
    const c = (counts.get(key) ?? 0) + 1;
    counts.set(key, c);
    if (c > best.count) best = { word: key, count: c };
  }
  return best;
}
