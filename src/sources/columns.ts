/**
 * Column configuration: checking that a file has the configured columns (with a "did you mean" hint),
 * and mapping a raw row to a SourceRecord (url_col -> url, caption_col -> caption, meta columns -> meta).
 */
import type { InputConfig } from '../pipeline/config-types.ts';
import type { SourceRecord } from './record.ts';
import type { RawRow, TableInfo } from './table.ts';

/** Damerau (optimal string alignment) edit distance: `TEXT` vs `TXET` is 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The available name closest to `name` (same ignoring case and spaces, or a few edits away), if any. */
export function closestName(name: string, available: string[]): string | undefined {
  const norm = (s: string) => s.trim().toLowerCase();
  const target = norm(name);
  const same = available.find((c) => norm(c) === target);
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.min(3, Math.floor(target.length / 3)));
  for (const c of available) {
    const dist = editDistance(target, norm(c));
    if (dist <= bestDistance && (best === undefined || dist < bestDistance)) {
      best = c;
      bestDistance = dist;
    }
  }
  return best;
}

/** The columns a file must have according to the input config, each with the setting that names it. */
export function requiredColumns(input: InputConfig): { name: string; setting: string }[] {
  const cols = [{ name: input.url_col, setting: 'url_col' }];
  if (input.caption_col !== undefined) cols.push({ name: input.caption_col, setting: 'caption_col' });
  for (const m of input.meta_cols ?? []) cols.push({ name: m, setting: 'meta_cols' });
  return cols;
}

/**
 * Checks the file's columns against the config; throws one Error listing every missing column.
 * Returns the columns to read (null = all of them, when meta_cols is absent).
 */
export function checkColumns(file: string, info: TableInfo, input: InputConfig): string[] | null {
  let required = requiredColumns(input);
  // JSONL: only the first object's keys are known (none when no early line parsed); other keys may
  // simply be absent from it.
  if (!info.columnsComplete) {
    required = info.columns.length === 0 ? [] : required.filter((c) => c.setting !== 'meta_cols');
  }
  const present = new Set(info.columns);
  const problems: string[] = [];
  for (const { name, setting } of required) {
    if (present.has(name)) continue;
    const hint = closestName(name, info.columns);
    problems.push(`column "${name}" (${setting}) not found` + (hint !== undefined ? `; did you mean "${hint}"?` : ''));
  }
  if (problems.length > 0) {
    const where = info.columnsComplete ? 'available columns' : 'keys of the first object';
    const list = info.columns.length ? info.columns.map((c) => `"${c}"`).join(', ') : '(none)';
    throw new Error(`${file}: ${problems.join('; ')}. ${where}: ${list}`);
  }
  if (input.meta_cols === undefined) return null;
  return [...new Set(required.map((c) => c.name))];
}

/** Makes a value JSON-friendly: bigint -> number when exact (else string), Date -> ISO string, recursively. */
export function plainValue(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Array.isArray(value)) return value.map(plainValue);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = plainValue(v);
    return out;
  }
  return value === undefined ? null : value;
}

function toCaption(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'object') return JSON.stringify(plainValue(value));
  return String(value);
}

/** Where a row is, for messages: "file row 7" or "file line 9 (row 7)" when lines and rows differ. */
export function rowLocation(file: string, fileRow: number, line?: number): string {
  const row = fileRow + 1;
  return line === undefined || line === row ? `${file} row ${row}` : `${file} line ${line} (row ${row})`;
}

export interface RowPosition {
  row: number;
  file: string;
  fileRow: number;
}

/** Maps a raw row to a record. A row error or an unusable URL gives a record with `error` set. */
export function toRecord(raw: RawRow, pos: RowPosition, input: InputConfig): SourceRecord {
  // Hot path (once per row): no closures or spreads here.
  const { row, file, fileRow } = pos;
  const values = raw.values;
  if (values === undefined) {
    return {
      row,
      file,
      fileRow,
      url: '',
      caption: null,
      meta: {},
      error: `${rowLocation(file, fileRow, raw.line)}: ${raw.error}`,
    };
  }
  const urlValue = values[input.url_col];
  const caption = input.caption_col === undefined ? null : toCaption(values[input.caption_col]);
  const meta: Record<string, unknown> = {};
  if (input.meta_cols) {
    for (const c of input.meta_cols) meta[c] = plainValue(values[c]);
  } else {
    for (const k in values) if (k !== input.url_col && k !== input.caption_col) meta[k] = plainValue(values[k]);
  }
  if (typeof urlValue === 'string' && urlValue.trim() !== '')
    return { row, file, fileRow, url: urlValue, caption, meta };
  const what =
    urlValue === undefined
      ? 'missing'
      : urlValue === null
        ? 'null'
        : typeof urlValue === 'string'
          ? 'empty'
          : `a ${typeof urlValue}, not a string`;
  const error = `${rowLocation(file, fileRow, raw.line)}: URL column "${input.url_col}" is ${what}`;
  return { row, file, fileRow, url: '', caption, meta, error };
}
