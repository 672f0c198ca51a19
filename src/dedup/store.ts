/**
 * Writes one run's outcome in a single transaction: the target's decisions (exact kinds all rewritten, near
 * duplicates from the restart point on), its membership snapshot with phash bands, and the run record. An
 * interrupted run leaves the previous state whole; a rerun recomputes.
 */
import type Database from 'better-sqlite3';
import { BAND_INDEXES } from './schema.ts';
import { U_BANDS } from './universe.ts';
import type { PhashDecision } from './phash-stage.ts';

/** Above this many new rows (and more than the table holds), band indexes are dropped and rebuilt. */
const BULK_ROWS = 100_000;

export interface RunRecord {
  settings: string;
  refsFingerprint: string;
}

export function readRun(db: Database.Database, targetId: number): (RunRecord & { generation: number }) | undefined {
  const row = db
    .prepare('SELECT settings, refs_fingerprint, generation FROM dedup_runs WHERE dataset_id = ?')
    .get(targetId) as { settings: string; refs_fingerprint: string; generation: number } | undefined;
  return row && { settings: row.settings, refsFingerprint: row.refs_fingerprint, generation: row.generation };
}

export interface WriteInput {
  targetId: number;
  run: RunRecord;
  /** Near-duplicate decisions are rewritten for keys >= this (null: none are). '' = all. */
  fromKey: string | null;
  phash: PhashDecision[];
  /** False: the membership snapshot is already this run's samples. */
  membersChanged: boolean;
}

export function writeOutcome(db: Database.Database, w: WriteInput): void {
  const d = w.targetId;
  const inUniverse = `EXISTS (SELECT 1 FROM temp.dedup_u u WHERE u.dataset_id = :d AND u.key = dedup_decisions.key)`;
  // Pending decisions: exact ones are recomputed in full; near ones from fromKey on; those of samples that left go.
  db.prepare(
    `DELETE FROM dedup_decisions WHERE dataset_id = :d AND applied = 0
       AND (kind <> 'phash' OR (:from IS NOT NULL AND key >= :from) OR NOT ${inUniverse})`,
  ).run({ d, from: w.fromKey });
  // A removed sample that is back (its shard fetched again) is decided afresh.
  db.prepare(`DELETE FROM dedup_decisions WHERE dataset_id = :d AND applied = 1 AND ${inUniverse}`).run({ d });

  db.prepare(
    `INSERT INTO dedup_decisions (dataset_id, key, duplicate_of_dataset, duplicate_of_key, kind, distance)
     SELECT u.dataset_id, u.key, o.dataset_id, o.key, x.kind, CASE x.kind WHEN 'url' THEN NULL ELSE 0 END
     FROM temp.dedup_exact x JOIN temp.dedup_u u ON u.seq = x.seq JOIN temp.dedup_u o ON o.seq = x.of_seq`,
  ).run();
  const near = db.prepare(
    `INSERT INTO dedup_decisions (dataset_id, key, duplicate_of_dataset, duplicate_of_key, kind, distance)
     SELECT u.dataset_id, u.key, o.dataset_id, o.key, 'phash', ? FROM temp.dedup_u u, temp.dedup_u o WHERE u.seq = ? AND o.seq = ?`,
  );
  for (const p of w.phash) near.run(p.distance, p.seq, p.ofSeq);

  if (w.membersChanged) syncMembers(db, d);
  db.prepare(
    `INSERT INTO dedup_runs (dataset_id, settings, refs_fingerprint, generation, updated) VALUES (?, ?, ?, 1, ?)
     ON CONFLICT(dataset_id) DO UPDATE SET settings = excluded.settings, refs_fingerprint = excluded.refs_fingerprint,
       generation = generation + 1, updated = excluded.updated`,
  ).run(d, w.run.settings, w.run.refsFingerprint, new Date().toISOString());
}

/** Makes `dedup_phash_bands` of the target equal to its samples in this run. */
function syncMembers(db: Database.Database, d: number): void {
  const same = U_BANDS.map((b, i) => `band${i} IS ${b}`).join(' AND ');
  db.prepare(
    `DELETE FROM dedup_phash_bands WHERE dataset_id = :d AND NOT EXISTS (
       SELECT 1 FROM temp.dedup_u u WHERE u.dataset_id = :d AND u.key = dedup_phash_bands.key AND ${same})`,
  ).run({ d });
  const missing = `FROM temp.dedup_u u WHERE u.dataset_id = :d AND NOT EXISTS (
       SELECT 1 FROM dedup_phash_bands m WHERE m.dataset_id = :d AND m.key = u.key)`;
  const adding = db.prepare(`SELECT count(*) ${missing}`).pluck().get({ d }) as number;
  const existing = db.prepare('SELECT count(*) FROM dedup_phash_bands').pluck().get() as number;
  const bulk = adding > BULK_ROWS && adding > existing;
  if (bulk) for (const ix of BAND_INDEXES) db.exec(`DROP INDEX IF EXISTS ${ix.name}`);
  db.prepare(
    `INSERT INTO dedup_phash_bands (dataset_id, key, band0, band1, band2, band3) SELECT :d, u.key, ${U_BANDS.join(', ')} ${missing}`,
  ).run({ d });
  if (bulk) for (const ix of BAND_INDEXES) db.exec(ix.sql);
}
