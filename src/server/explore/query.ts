/**
 * The explorer's filtered view of a dataset: filters from the query string -> one parameterised SQL statement
 * over `explore_samples` (caption search through the FTS5 table). Column names never come from the request
 * except metadata keys, which are checked against a strict pattern and bound as a JSON path parameter.
 */
import type { IndexDb } from '../../index-db/db.ts';

export class FilterError extends Error {}

export interface Filters {
  status?: string;
  reason?: string;
  /** Caption search, FTS5 query syntax restricted to words (see ftsQuery). */
  q?: string;
  minWidth?: number;
  minHeight?: number;
  /** Source column (from the manifest's `meta`) -> value it must equal. */
  meta: Record<string, string>;
}

export interface ExploreRow {
  key: string;
  shard: number;
  status: string;
  reason: string | null;
  width: number | null;
  height: number | null;
  original_width: number | null;
  original_height: number | null;
  url: string;
  caption: string | null;
  meta: string | null;
}

const META_KEY = /^[A-Za-z0-9_]{1,64}$/;
const KNOWN = new Set(['status', 'reason', 'q', 'min_width', 'min_height', 'page', 'per', 'format']);

function int(v: string, name: string): number {
  if (!/^\d{1,9}$/.test(v))
    throw new FilterError(`${name} must be a non-negative integer, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v);
}

/** Filters from a parsed query string; unknown parameters are refused by name. */
export function parseFilters(query: Record<string, unknown>): Filters {
  const f: Filters = { meta: {} };
  for (const [k, raw] of Object.entries(query)) {
    if (Array.isArray(raw)) throw new FilterError(`parameter ${k} given more than once`);
    const v = String(raw ?? '');
    if (v.length > 500) throw new FilterError(`parameter ${k} is longer than 500 characters`);
    if (k.startsWith('meta.')) {
      const col = k.slice(5);
      if (!META_KEY.test(col))
        throw new FilterError(`metadata column ${JSON.stringify(col.slice(0, 70))}: letters, digits and _ only`);
      if (v !== '') f.meta[col] = v;
      continue;
    }
    if (!KNOWN.has(k))
      throw new FilterError(
        `unknown parameter ${JSON.stringify(k.slice(0, 70))} (known: ${[...KNOWN].join(', ')}, meta.<column>)`,
      );
    if (v === '') continue;
    if (k === 'status') f.status = v;
    if (k === 'reason') f.reason = v;
    if (k === 'q') f.q = v;
    if (k === 'min_width') f.minWidth = int(v, k);
    if (k === 'min_height') f.minHeight = int(v, k);
  }
  return f;
}

/** Words of the search text, each quoted for FTS5 (no operators from the request), all required. */
export function ftsQuery(q: string): string | null {
  const words = q.match(/[\p{L}\p{N}_]+/gu) ?? [];
  return words.length
    ? words
        .slice(0, 16)
        .map((w) => `"${w}"`)
        .join(' ')
    : null;
}

/**
 * FROM and WHERE of a view. With a caption search the FTS5 table drives the loop (CROSS JOIN fixes the order):
 * the matches are few next to the dataset, so they are looked up by rowid instead of testing every row.
 */
function where(datasetId: number, f: Filters): { sql: string; args: unknown[] } {
  const conds = ['s.dataset_id = ?'];
  const args: unknown[] = [datasetId];
  let from = 'explore_samples s';
  const pre: unknown[] = [];
  if (f.status) (conds.push('s.status = ?'), args.push(f.status));
  if (f.reason) (conds.push('s.reason = ?'), args.push(f.reason));
  if (f.minWidth !== undefined) (conds.push('coalesce(s.original_width, s.width) >= ?'), args.push(f.minWidth));
  if (f.minHeight !== undefined) (conds.push('coalesce(s.original_height, s.height) >= ?'), args.push(f.minHeight));
  for (const [col, v] of Object.entries(f.meta)) {
    // Numbers compare as numbers, anything else as text.
    conds.push('CAST(json_extract(s.meta, ?) AS TEXT) = ?');
    args.push(`$.${col}`, /^-?\d+(\.\d+)?$/.test(v) ? String(Number(v)) : v);
  }
  if (f.q !== undefined) {
    const m = ftsQuery(f.q);
    if (m === null) conds.push('0');
    else {
      from = 'explore_captions c CROSS JOIN explore_samples s ON s.id = c.rowid';
      conds.unshift('explore_captions MATCH ?');
      pre.push(m);
    }
  }
  return { sql: `${from} WHERE ${conds.join(' AND ')}`, args: [...pre, ...args] };
}

const COLS =
  's.key, s.shard, s.status, s.reason, s.width, s.height, s.original_width, s.original_height, s.url, s.caption, s.meta';

export function countRows(index: IndexDb, datasetId: number, f: Filters): number {
  const w = where(datasetId, f);
  return index
    .stmt(`SELECT count(*) FROM ${w.sql}`)
    .pluck()
    .get(...w.args) as number;
}

/** A page of the view in key order. */
export function pageRows(index: IndexDb, datasetId: number, f: Filters, offset: number, limit: number): ExploreRow[] {
  const w = where(datasetId, f);
  return index
    .stmt(`SELECT ${COLS} FROM ${w.sql} ORDER BY s.key LIMIT ? OFFSET ?`)
    .all(...w.args, limit, offset) as ExploreRow[];
}

/** Every row of the view, streamed (export). */
export function iterateRows(index: IndexDb, datasetId: number, f: Filters): IterableIterator<ExploreRow> {
  const w = where(datasetId, f);
  return index.db
    .prepare(`SELECT ${COLS} FROM ${w.sql} ORDER BY s.key`)
    .iterate(...w.args) as IterableIterator<ExploreRow>;
}

export function sampleRow(index: IndexDb, datasetId: number, key: string): ExploreRow | undefined {
  return index
    .stmt(`SELECT ${COLS} FROM explore_samples s WHERE s.dataset_id = ? AND s.key = ?`)
    .get(datasetId, key) as ExploreRow | undefined;
}

/** Counts by status and by status/reason. */
export function counts(
  index: IndexDb,
  datasetId: number,
): { status: Array<[string, number]>; reasons: Array<[string, number]>; metaColumns: string[] } {
  const status = (
    index
      .stmt('SELECT status, count(*) AS n FROM explore_samples WHERE dataset_id = ? GROUP BY status')
      .all(datasetId) as Array<{ status: string; n: number }>
  ).map((r) => [r.status, r.n] as [string, number]);
  const reasons = (
    index
      .stmt(
        "SELECT status || ': ' || reason AS r, count(*) AS n FROM explore_samples WHERE dataset_id = ? AND reason IS NOT NULL GROUP BY status, reason",
      )
      .all(datasetId) as Array<{ r: string; n: number }>
  ).map((r) => [r.r, r.n] as [string, number]);
  const one = index
    .stmt('SELECT meta FROM explore_samples WHERE dataset_id = ? AND meta IS NOT NULL LIMIT 1')
    .pluck()
    .get(datasetId) as string | undefined;
  const metaColumns = one ? Object.keys(JSON.parse(one) as object).filter((k) => META_KEY.test(k)) : [];
  return { status, reasons, metaColumns };
}
