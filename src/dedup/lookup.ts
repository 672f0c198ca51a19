/**
 * Point lookup in the index: which samples of a dataset have a dHash within distance r of a given one. Multi-index
 * hashing on the indexed band columns of `dedup_phash_bands` (filled by dedup runs): each band is probed with
 * every value within its radius (`bandRadii`; one indexed IN-list query per band), candidates are verified with
 * the full Hamming distance. A lookup reads the candidate buckets only, never all hashes.
 */
import type Database from 'better-sqlite3';
import { BAND_COUNT, bandRadii, bandsOf, distance64, flipMasks, phashHalves } from './bands.ts';

export interface NearMatch {
  key: string;
  distance: number;
}

/**
 * The probe of one band: an indexed IN-list lookup. INDEXED BY: without ANALYZE statistics SQLite prefers the
 * primary key (dataset_id) and scans the dataset, ~500x slower at 100k hashes.
 */
export function bandQuery(band: number): string {
  return `SELECT key, band0, band1, band2, band3 FROM dedup_phash_bands INDEXED BY dedup_phash_band${band}
    WHERE dataset_id = ? AND band${band} IN (SELECT value FROM json_each(?))`;
}

/** Samples of `datasetId` within distance r of `phashHex`, nearest first (ties: by key). Needs a dedup run. */
export function findNearDuplicates(db: Database.Database, datasetId: number, phashHex: string, r: number): NearMatch[] {
  const { hi, lo } = phashHalves(phashHex);
  const query = bandsOf(hi, lo);
  const radii = bandRadii(r);
  const found = new Map<string, number>();
  for (let b = 0; b < BAND_COUNT; b++) {
    if (radii[b] < 0) continue;
    const probes = JSON.stringify(Array.from(flipMasks(radii[b]), (m) => query[b] ^ m));
    const rows = db.prepare(bandQuery(b)).raw().all(datasetId, probes) as Array<
      [string, number, number, number, number]
    >;
    for (const [key, b0, b1, b2, b3] of rows) {
      const d = distance64((b0 << 16) | b1, (b2 << 16) | b3, hi, lo);
      if (d <= r) found.set(key, d);
    }
  }
  return [...found]
    .map(([key, distance]) => ({ key, distance }))
    .sort((a, b) => a.distance - b.distance || (a.key < b.key ? -1 : 1));
}
