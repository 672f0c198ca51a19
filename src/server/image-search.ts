/**
 * Search by an uploaded image: the bytes go through the same header guards as fetch (format allow-list, pixel
 * ceiling, no decode before the size is known), then an exact match on sha256 and near matches on the 64-bit
 * dHash. Near matches use the dedup index's multi-index hashing where `muse-data dedup` has run on a dataset,
 * else a scan of the dataset's recorded hashes.
 */
import { hash } from 'node:crypto';
import type { IndexDb, SampleRef } from '../index-db/db.ts';
import { phashFromInt } from '../index-db/db.ts';
import { checkHeader, dhash64, hammingDistance } from '../image/index.ts';
import type { ImageConfig } from '../pipeline/config-types.ts';
import { findNearDuplicates } from '../dedup/lookup.ts';

export class UploadError extends Error {}

export interface NearRef extends SampleRef {
  distance: number;
}

export interface ImageSearch {
  sha256: string;
  phash: string;
  width: number;
  height: number;
  exact: SampleRef[];
  near: NearRef[];
}

export const MAX_PHASH_DISTANCE = 15;

function guardConfig(maxPixels: number): ImageConfig {
  return { size: 0, resize_mode: 'no', resize_only_if_bigger: false, encode_format: 'jpg', encode_quality: 95, min_image_size: 0, max_aspect_ratio: 0, max_image_area: maxPixels, min_file_bytes: 0 };
}

function hasBands(index: IndexDb): boolean {
  return index.stmt("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dedup_phash_bands'").pluck().get() !== undefined;
}

export async function searchImage(index: IndexDb, bytes: Buffer, opts: { maxPixels: number; distance: number }): Promise<ImageSearch> {
  if (!(Number.isInteger(opts.distance) && opts.distance >= 0 && opts.distance <= MAX_PHASH_DISTANCE)) throw new UploadError(`distance must be an integer in 0..${MAX_PHASH_DISTANCE}`);
  const verdict = await checkHeader(bytes, guardConfig(opts.maxPixels));
  if (!verdict.ok) throw new UploadError(`the upload was refused: ${verdict.error}`);
  let phash: string;
  try {
    phash = await dhash64(bytes);
  } catch {
    throw new UploadError('the upload could not be decoded (corrupt or truncated image)');
  }
  const sha256 = hash('sha256', bytes, 'hex');
  const exact = index.samplesBySha256(sha256);
  const near: NearRef[] = [];
  const bands = hasBands(index);
  for (const d of index.datasets()) {
    const indexed = bands && index.stmt('SELECT 1 FROM dedup_phash_bands WHERE dataset_id = ? LIMIT 1').pluck().get(d.id) !== undefined;
    const matches: Array<{ key: string; distance: number }> = [];
    if (indexed) matches.push(...findNearDuplicates(index.db, d.id, phash, opts.distance));
    else {
      const rows = index.stmt('SELECT key, phash FROM samples WHERE dataset_id = ? AND phash IS NOT NULL').safeIntegers(true).raw().iterate(d.id) as IterableIterator<[string, bigint]>;
      for (const [key, p] of rows) {
        const dist = hammingDistance(phash, phashFromInt(p));
        if (dist <= opts.distance) matches.push({ key, distance: dist });
      }
    }
    for (const m of matches) {
      const s = index.stmt('SELECT key, shard, status, sha256, phash FROM samples WHERE dataset_id = ? AND key = ?').safeIntegers(true).get(d.id, m.key) as
        | { key: string; shard: bigint; status: string; sha256: Buffer | null; phash: bigint | null }
        | undefined;
      if (!s) continue;
      const sha = s.sha256 ? s.sha256.toString('hex') : null;
      if (sha === sha256) continue; // already an exact match
      near.push({ datasetId: d.id, dataset: d.name, datasetPath: d.path, key: s.key, shard: Number(s.shard), status: s.status, sha256: sha, phash: s.phash === null ? null : phashFromInt(s.phash), distance: m.distance });
    }
  }
  near.sort((a, b) => a.distance - b.distance || a.dataset.localeCompare(b.dataset) || (a.key < b.key ? -1 : 1));
  return { sha256, phash, width: verdict.header.width, height: verdict.header.height, exact, near: near.slice(0, 200) };
}
