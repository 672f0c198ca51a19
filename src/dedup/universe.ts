/**
 * The samples one dedup run looks at, in their fixed order, as a temporary table `temp.dedup_u`; and the exact
 * kinds (URL, identical bytes, identical image + caption), decided in SQL into `temp.dedup_exact`.
 *
 * Order: reference datasets first (by registration order in the index, i.e. dataset id), then the dataset being
 * deduplicated; within a dataset by key (string order). `seq` is the position in that order. Only samples with
 * status `ok` take part (a fallback is a placeholder picture; removed or failed rows have no image).
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';

export const EXACT_KINDS = ['url', 'sha256', 'pair'] as const;
export const KINDS = [...EXACT_KINDS, 'phash'] as const;
export type DedupKind = (typeof KINDS)[number];
export type ExactKind = (typeof EXACT_KINDS)[number];

/** The value compared by each exact kind (NULL: the sample cannot match by it). */
const KIND_VALUE: Record<ExactKind, string> = {
  url: 'url_hash',
  sha256: 'sha256',
  pair: 'CASE WHEN sha256 IS NOT NULL AND caption_hash IS NOT NULL THEN sha256 || caption_hash END',
};

/** Band columns of `temp.dedup_u` as SQL expressions (hi/lo are the unsigned 32-bit halves). */
export const U_BANDS = ['(u.hi >> 16)', '(u.hi & 65535)', '(u.lo >> 16)', '(u.lo & 65535)'];

export interface Universe {
  /** Rows in `temp.dedup_u`. */
  total: number;
  /** First seq of the target dataset (seqs start at 1); references are below it. */
  targetStart: number;
  targetCount: number;
}

/** (Re)creates `temp.dedup_u` for the references (in id order) followed by the target. */
export function loadUniverse(db: Database.Database, refIds: readonly number[], targetId: number): Universe {
  db.exec(`
    DROP TABLE IF EXISTS temp.dedup_u;
    DROP TABLE IF EXISTS temp.dedup_exact;
    CREATE TEMP TABLE dedup_u (
      seq INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, key TEXT NOT NULL,
      url_hash BLOB, sha256 BLOB, caption_hash BLOB, hi INTEGER, lo INTEGER
    );
    CREATE TEMP TABLE dedup_exact (seq INTEGER PRIMARY KEY, of_seq INTEGER NOT NULL, kind TEXT NOT NULL);
  `);
  const copy = db.prepare(`
    INSERT INTO temp.dedup_u (dataset_id, key, url_hash, sha256, caption_hash, hi, lo)
    SELECT dataset_id, key, url_hash, sha256, caption_hash, (phash >> 32) & 4294967295, phash & 4294967295
    FROM main.samples WHERE dataset_id = ? AND status = 'ok' ORDER BY key`);
  for (const id of refIds) copy.run(id);
  const targetStart = db.prepare('SELECT coalesce(max(seq), 0) + 1 FROM temp.dedup_u').pluck().get() as number;
  copy.run(targetId);
  db.exec('CREATE INDEX temp.dedup_u_key ON dedup_u(dataset_id, key)');
  const total = db.prepare('SELECT count(*) FROM temp.dedup_u').pluck().get() as number;
  return { total, targetStart, targetCount: total - (targetStart - 1) };
}

/**
 * Exact kinds, applied in the fixed order url -> sha256 -> pair, each to the samples no earlier kind marked:
 * within a group of equal values the first sample in order is kept and every other target sample is marked a
 * duplicate of it. References are never marked (they are all kept). Returns the count per kind.
 */
export function decideExact(
  db: Database.Database,
  kinds: readonly DedupKind[],
  u: Universe,
): Partial<Record<ExactKind, number>> {
  const counts: Partial<Record<ExactKind, number>> = {};
  for (const kind of EXACT_KINDS) {
    if (!kinds.includes(kind)) continue;
    const v = KIND_VALUE[kind];
    const res = db
      .prepare(
        `INSERT INTO temp.dedup_exact (seq, of_seq, kind)
         SELECT seq, first, ? FROM (
           SELECT seq, min(seq) OVER (PARTITION BY ${v}) AS first FROM temp.dedup_u u
           WHERE ${v} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM temp.dedup_exact x WHERE x.seq = u.seq)
         ) WHERE seq <> first AND seq >= ?`,
      )
      .run(kind, u.targetStart);
    counts[kind] = res.changes;
  }
  return counts;
}

/** sha256 over the references' rows in order: any change to them (added, removed, rehashed) changes it. */
export function referencesFingerprint(db: Database.Database, u: Universe): string {
  if (u.targetStart === 1) return 'none';
  const h = createHash('sha256');
  const rows = db
    .prepare(
      'SELECT dataset_id, key, url_hash, sha256, caption_hash, hi, lo FROM temp.dedup_u WHERE seq < ? ORDER BY seq',
    )
    .raw()
    .iterate(u.targetStart) as IterableIterator<unknown[]>;
  for (const row of rows)
    h.update(row.map((x) => (Buffer.isBuffer(x) ? x.toString('hex') : String(x))).join(',') + '\n');
  return h.digest('hex');
}
