/**
 * Search by an uploaded image: the bytes go through the same header guards as fetch (format allow-list, pixel
 * ceiling, no decode before the size is known), then an exact match on sha256 and near matches on the 64-bit
 * dHash. A dataset records the dHash of its output pixels (resized, centre-cropped or padded by its pipeline), so
 * each dataset is searched with the upload framed the same way (its dataset.json's image settings). Near matches use
 * the dedup index's multi-index hashing where `muse-data dedup` has run on a dataset, else a scan of the dataset's
 * recorded hashes.
 */
import type { SampleIndex } from '../dataset/sample-index.ts';
import { SHARD_DIGITS } from '../dataset/names.ts';
import { hash } from 'node:crypto';
import type { IndexDb, SampleRef } from '../index-db/db.ts';
import { phashFromInt } from '../index-db/db.ts';
import { checkHeader, createImageProcessor, dhash64, hammingDistance } from '../image/index.ts';
import { readDatasetJson } from '../dataset/dataset-json.ts';
import type { ImageConfig } from '../pipeline/config-types.ts';
import { RESIZE_MODES, type ResizeMode } from '../image/geometry.ts';
import { findNearDuplicates } from '../dedup/lookup.ts';

export class UploadError extends Error {}

export interface NearRef extends SampleRef {
  distance: number;
}

export interface ImageSearch {
  sha256: string;
  /** dHash of the upload as it is (each dataset is searched with the upload framed as its pipeline frames images). */
  phash: string;
  width: number;
  height: number;
  exact: SampleRef[];
  near: NearRef[];
}

export const MAX_PHASH_DISTANCE = 15;

function guardConfig(maxPixels: number): ImageConfig {
  return {
    size: 0,
    resize_mode: 'no',
    resize_only_if_bigger: false,
    encode_format: 'jpg',
    encode_quality: 95,
    min_image_size: 0,
    max_aspect_ratio: 0,
    max_image_area: maxPixels,
    min_file_bytes: 0,
  };
}

/**
 * The upload's dHash as the pipeline of the dataset in `datasetPath` would have recorded it: the same resize and
 * centre crop or padding (dataset.json's image settings). Its filters (minimum size, aspect ratio) are left out, so a
 * smaller copy is still hashed. `plain` when the folder has no usable dataset.json.
 */
async function framedHash(
  datasetPath: string,
  bytes: Buffer,
  plain: string,
  maxPixels: number,
  cache: Map<string, string>,
): Promise<string> {
  let image: Partial<ImageConfig> | undefined;
  try {
    image = (readDatasetJson(datasetPath)?.pipeline as { image?: Partial<ImageConfig> } | undefined)?.image;
  } catch {
    return plain; // a damaged dataset.json: search with the upload as it is
  }
  if (
    !image ||
    typeof image.size !== 'number' ||
    !(RESIZE_MODES as readonly string[]).includes(String(image.resize_mode)) ||
    typeof image.resize_only_if_bigger !== 'boolean'
  )
    return plain;
  const mode = image.resize_mode as ResizeMode;
  if (mode === 'no') return plain;
  const key = `${image.size}:${mode}:${image.resize_only_if_bigger}`;
  const known = cache.get(key);
  if (known) return known;
  const processed = await createImageProcessor({
    ...guardConfig(maxPixels),
    size: image.size,
    resize_mode: mode,
    resize_only_if_bigger: image.resize_only_if_bigger,
    encode_format: 'png',
  })(bytes);
  const h = processed.ok ? processed.phash : plain;
  cache.set(key, h);
  return h;
}

function hasBands(index: IndexDb): boolean {
  return (
    index.stmt("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dedup_phash_bands'").pluck().get() !==
    undefined
  );
}

export async function searchImage(
  index: IndexDb,
  samples: SampleIndex,
  bytes: Buffer,
  opts: { maxPixels: number; distance: number },
): Promise<ImageSearch> {
  if (!(Number.isInteger(opts.distance) && opts.distance >= 0 && opts.distance <= MAX_PHASH_DISTANCE))
    throw new UploadError(`distance must be an integer in 0..${MAX_PHASH_DISTANCE}`);
  const verdict = await checkHeader(bytes, guardConfig(opts.maxPixels));
  if (!verdict.ok) throw new UploadError(`the upload was refused: ${verdict.error}`);
  let phash: string;
  try {
    phash = await dhash64(bytes);
  } catch {
    throw new UploadError('the upload could not be decoded (corrupt or truncated image)');
  }
  const sha256 = hash('sha256', bytes, 'hex');
  const exact = await samples.samplesBySha256(sha256);
  const near: NearRef[] = [];
  const bands = hasBands(index);
  const framed = new Map<string, string>();
  for (const d of index.datasets()) {
    const h = await framedHash(d.path, bytes, phash, opts.maxPixels, framed);
    const indexed =
      bands &&
      index.stmt('SELECT 1 FROM dedup_phash_bands WHERE dataset_id = ? LIMIT 1').pluck().get(d.id) !== undefined;
    const matches: Array<{ key: string; distance: number }> = [];
    if (indexed) matches.push(...findNearDuplicates(index.db, d.id, h, opts.distance));
    else {
      // The sample runs (a scan of their phash column), then the old samples table for shards not in runs.
      for (const s of await samples.nearPhash(d.id, h, opts.distance)) if (s.sha256 !== sha256) near.push(s);
      const rows = index
        .stmt('SELECT key, phash FROM samples WHERE dataset_id = ? AND phash IS NOT NULL')
        .safeIntegers(true)
        .raw()
        .iterate(d.id) as IterableIterator<[string, bigint]>;
      for (const [key, p] of rows) {
        if (samples.layout.inRuns.has(`${d.id}:${Number(key.slice(0, SHARD_DIGITS))}`)) continue;
        const dist = hammingDistance(h, phashFromInt(p));
        if (dist <= opts.distance) matches.push({ key, distance: dist });
      }
    }
    for (const m of matches) {
      const s = index
        .stmt('SELECT key, shard, status, sha256, phash FROM samples WHERE dataset_id = ? AND key = ?')
        .safeIntegers(true)
        .get(d.id, m.key) as
        { key: string; shard: bigint; status: string; sha256: Buffer | null; phash: bigint | null } | undefined;
      if (!s) continue;
      const sha = s.sha256 ? s.sha256.toString('hex') : null;
      if (sha === sha256) continue; // already an exact match
      near.push({
        datasetId: d.id,
        dataset: d.name,
        datasetPath: d.path,
        key: s.key,
        shard: Number(s.shard),
        status: s.status,
        sha256: sha,
        phash: s.phash === null ? null : phashFromInt(s.phash),
        distance: m.distance,
      });
    }
  }
  near.sort((a, b) => a.distance - b.distance || a.dataset.localeCompare(b.dataset) || (a.key < b.key ? -1 : 1));
  return { sha256, phash, width: verdict.header.width, height: verdict.header.height, exact, near: near.slice(0, 200) };
}
