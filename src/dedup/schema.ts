/**
 * The dedup tables of `index.sqlite`, created by this module (the index's migrations leave `dedup_*` to it).
 *
 * - `dedup_runs`: per deduplicated dataset, the settings (kinds, distance, reference datasets) and a fingerprint
 *   of the references its decisions were made with; a change of either recomputes the dataset from scratch.
 * - `dedup_phash_bands`: the dataset's samples that took part in the last run (its membership snapshot, used to
 *   find what changed) with their 64-bit dHash split into four 16-bit bands, each band indexed: point lookups
 *   by multi-index hashing (`findNearDuplicates`). NULL bands: a sample without a perceptual hash.
 * - `dedup_decisions`: one row per duplicate: which sample it duplicates, by which kind, at which distance
 *   (NULL for URL duplicates, 0 for identical bytes). `applied = 1`: removed from its shard by `--apply` (the
 *   row is kept as the record; such a sample no longer takes part in dedup).
 */
import type Database from 'better-sqlite3';

export const DEDUP_SCHEMA = `
CREATE TABLE IF NOT EXISTS dedup_runs (
  dataset_id INTEGER PRIMARY KEY,
  settings TEXT NOT NULL,
  refs_fingerprint TEXT NOT NULL,
  generation INTEGER NOT NULL,
  updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dedup_phash_bands (
  dataset_id INTEGER NOT NULL,
  key TEXT NOT NULL,
  band0 INTEGER,
  band1 INTEGER,
  band2 INTEGER,
  band3 INTEGER,
  PRIMARY KEY (dataset_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_decisions (
  dataset_id INTEGER NOT NULL,
  key TEXT NOT NULL,
  duplicate_of_dataset INTEGER NOT NULL,
  duplicate_of_key TEXT NOT NULL,
  kind TEXT NOT NULL,
  distance INTEGER,
  applied INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (dataset_id, key)
) WITHOUT ROWID;
`;

/** One index per band; dropped and rebuilt around bulk loads (a sorted build is ~4x faster than 1M inserts). */
export const BAND_INDEXES = [0, 1, 2, 3].map((b) => ({
  name: `dedup_phash_band${b}`,
  sql: `CREATE INDEX IF NOT EXISTS dedup_phash_band${b} ON dedup_phash_bands(dataset_id, band${b})`,
}));

export function ensureDedupSchema(db: Database.Database): void {
  db.exec(DEDUP_SCHEMA);
  for (const ix of BAND_INDEXES) db.exec(ix.sql);
}
