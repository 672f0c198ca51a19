import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Reads a banned-words file: one word or phrase per line, `#` starts a comment line, blank lines
 * are ignored. Throws an Error naming the resolved path when it cannot be read.
 */
export function loadBannedWords(file: string, baseDir: string): string[] {
  const path = resolve(baseDir, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`banned_words_file ${path} cannot be read: ${why}`);
  }
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A matcher for whole words and phrases, case-insensitive: "ass" matches "Ass!" but not "class";
 * a phrase matches across any whitespace ("foo  bar"). Word boundaries are Unicode letters, marks,
 * digits and underscore (JS `\b` only knows ASCII). Returns the first banned entry found, or null.
 */
export function createBannedMatcher(entries: string[]): (text: string) => string | null {
  if (entries.length === 0) return () => null;
  const alternatives = entries.map((e) => e.split(/\s+/u).map(escape).join('\\s+'));
  const re = new RegExp(`(?<![\\p{L}\\p{M}\\p{N}_])(?:${alternatives.join('|')})(?![\\p{L}\\p{M}\\p{N}_])`, 'iu');
  return (text) => re.exec(text)?.[0] ?? null;
}
