// Prompt sets for evaluation, from local files:
// - PartiPrompts TSV (`Prompt<TAB>Category<TAB>Challenge<TAB>Note`, header first; Prompt and Category required),
// - DrawBench CSV (`Prompts,Category`, header first; `Prompt` accepted too),
// - plain text, one prompt per line (category "all").
// The format follows the extension (.tsv / .csv / anything else); a missing column or an empty prompt is an
// error naming the file, the line and the column.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseCsvRecord } from '../sources/csv.ts';

export interface Prompt {
  prompt: string;
  category: string;
  challenge?: string;
  note?: string;
}

/** Splits CSV text into records, keeping newlines inside quoted fields; returns [line number, text] pairs. */
function csvRecords(text: string): [number, string][] {
  const out: [number, string][] = [];
  let start = 0;
  let line = 1;
  let startLine = 1;
  let quoted = false;
  for (let i = 0; i <= text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    if ((ch === '\n' && !quoted) || i === text.length) {
      const rec = text.slice(start, i).replace(/\r$/, '');
      if (rec.trim() !== '') out.push([startLine, rec]);
      start = i + 1;
      startLine = line + 1;
    }
    if (ch === '\n') line++;
  }
  return out;
}

function table(file: string, rows: [number, string[]][], want: { prompt: string[]; category: string[] }): Prompt[] {
  if (!rows.length) throw new Error(`${file}: empty prompts file`);
  const header = rows[0][1].map((h) => h.trim());
  const col = (names: string[]) => header.findIndex((h) => names.some((n) => n.toLowerCase() === h.toLowerCase()));
  const pi = col(want.prompt);
  const ci = col(want.category);
  const missing = [pi < 0 ? want.prompt[0] : '', ci < 0 ? want.category[0] : ''].filter(Boolean);
  if (missing.length)
    throw new Error(
      `${file}: missing column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')} (header: ${header.join(', ')})`,
    );
  const chi = col(['Challenge']);
  const ni = col(['Note']);
  const out: Prompt[] = [];
  for (const [line, fields] of rows.slice(1)) {
    const prompt = (fields[pi] ?? '').trim();
    if (!prompt) throw new Error(`${file}:${line}: empty '${header[pi]}'`);
    const p: Prompt = { prompt, category: (fields[ci] ?? '').trim() || 'uncategorised' };
    if (chi >= 0 && fields[chi]?.trim()) p.challenge = fields[chi].trim();
    if (ni >= 0 && fields[ni]?.trim()) p.note = fields[ni].trim();
    out.push(p);
  }
  if (!out.length) throw new Error(`${file}: no prompts after the header`);
  return out;
}

export function parsePrompts(text: string, file: string): Prompt[] {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.tsv') {
    const rows = text
      .split(/\r?\n/)
      .map((l, i) => [i + 1, l] as [number, string])
      .filter(([, l]) => l.trim() !== '');
    return table(
      file,
      rows.map(([n, l]) => [n, l.split('\t')]),
      { prompt: ['Prompt'], category: ['Category'] },
    );
  }
  if (ext === '.csv') {
    const rows: [number, string[]][] = csvRecords(text).map(([n, rec]) => {
      const r = parseCsvRecord(rec);
      if ('error' in r) throw new Error(`${file}:${n}: ${r.error} (column ${r.column + 1})`);
      return [n, r.fields];
    });
    return table(file, rows, { prompt: ['Prompts', 'Prompt'], category: ['Category'] });
  }
  const prompts = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .map((prompt) => ({ prompt, category: 'all' }));
  if (!prompts.length) throw new Error(`${file}: no prompts`);
  return prompts;
}

export async function readPrompts(file: string): Promise<Prompt[]> {
  const text = await fsp.readFile(file, 'utf8').catch((err: Error) => {
    throw new Error(`${file}: cannot read prompts (${err.message})`);
  });
  return parsePrompts(text, file);
}

/** Prompts grouped by category, in first-seen order. */
export function byCategory(prompts: Prompt[]): Map<string, Prompt[]> {
  const m = new Map<string, Prompt[]>();
  for (const p of prompts) m.set(p.category, [...(m.get(p.category) ?? []), p]);
  return m;
}
