/**
 * Where the near-duplicate pass must restart: greedy decisions before the first sample whose input changed are
 * still valid. A change is a target sample that is new (or rehashed) since the last run, a KEPT sample that left
 * (opted out, removed), or a sample whose exact-kind verdict flipped (so it entered or left the near-duplicate
 * pass). A duplicate that left changes nothing: no other decision points at a duplicate. Found by comparing
 * this run's samples with the membership snapshot of the last one (`dedup_phash_bands`).
 */
import type Database from 'better-sqlite3';
import { U_BANDS } from './universe.ts';

export interface Changes {
  /** The first changed key of the target dataset, or null when nothing that matters changed. */
  firstKey: string | null;
  /** Samples new or rehashed since the last run, and samples gone (the membership snapshot needs updating). */
  added: number;
  removed: number;
}

export function findChanges(db: Database.Database, targetId: number): Changes {
  const sameBands = U_BANDS.map((b, i) => `m.band${i} IS ${b}`).join(' AND ');
  const one = (sql: string) => db.prepare(sql).get({ d: targetId }) as { first: string | null; n: number };
  const added = one(
    `SELECT min(u.key) AS first, count(*) AS n FROM temp.dedup_u u WHERE u.dataset_id = :d AND NOT EXISTS (
       SELECT 1 FROM main.dedup_phash_bands m WHERE m.dataset_id = :d AND m.key = u.key AND ${sameBands})`,
  );
  const removed = one(
    `SELECT min(CASE WHEN NOT EXISTS (SELECT 1 FROM main.dedup_decisions x WHERE x.dataset_id = :d AND x.key = m.key)
                THEN m.key END) AS first, count(*) AS n
     FROM main.dedup_phash_bands m WHERE m.dataset_id = :d
       AND NOT EXISTS (SELECT 1 FROM temp.dedup_u u WHERE u.dataset_id = :d AND u.key = m.key)`,
  );
  // Exact verdicts that flipped, from the two (small) sets of exact duplicates.
  const flipped = one(
    `SELECT min(key) AS first, count(*) AS n FROM (
       SELECT u.key FROM temp.dedup_exact e JOIN temp.dedup_u u ON u.seq = e.seq
       WHERE u.dataset_id = :d AND NOT EXISTS (
         SELECT 1 FROM main.dedup_decisions x WHERE x.dataset_id = :d AND x.key = u.key AND x.kind <> 'phash' AND x.applied = 0)
       UNION ALL
       SELECT x.key FROM main.dedup_decisions x JOIN temp.dedup_u u ON u.dataset_id = :d AND u.key = x.key
       WHERE x.dataset_id = :d AND x.kind <> 'phash' AND x.applied = 0
         AND NOT EXISTS (SELECT 1 FROM temp.dedup_exact e WHERE e.seq = u.seq))`,
  );
  // a kept sample that left changes what follows; a duplicate that left does not
  const keys = [added.first, removed.first, flipped.first].filter((k): k is string => k !== null).sort();
  return { firstKey: keys[0] ?? null, added: added.n, removed: removed.n };
}

/** The seq of the first target sample at or after `key` (past the end when there is none). */
export function seqAtKey(db: Database.Database, targetId: number, key: string): number {
  const seq = db
    .prepare('SELECT min(seq) FROM temp.dedup_u WHERE dataset_id = ? AND key >= ?')
    .pluck()
    .get(targetId, key) as number | null;
  return seq ?? Number.MAX_SAFE_INTEGER;
}
