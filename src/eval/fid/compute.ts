// FID between two image sets: decode -> resize (clean-fid bicubic by default, or pytorch-fid bilinear) ->
// Inception pool features -> float64 statistics -> Fréchet distance. Statistics of a set are cached as .npz
// (pytorch-fid's format) keyed by the set's files, the Inception weights' hash, the resize and the count, so a
// repeated evaluation against the same real set does not recompute them. A `.npz` path is accepted for either
// side (statistics made by pytorch-fid's --save-stats, or by muse).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FidInception, FID_FEATURE_DIM, FID_INPUT_SIZE } from '../../models/inception/index.ts';
import { imageSetFingerprint, readImageSet, type ImageSetReport, type ReadOptions } from '../image-sets.ts';
import { frechetDistance, type FrechetParts } from './frechet.ts';
import { loadStatsNpz, saveStatsNpz } from './npz.ts';
import { fidInputImage, type FidResize } from './resize.ts';
import { featureStatistics, type FeatureStats } from './statistics.ts';

/** Id of the built-in deterministic random weights (not a real Inception: FID values are not comparable). */
export const RANDOM_INCEPTION_ID = 'fid-inception-random-fmix32-v1';

export interface LoadedInception {
  model: FidInception;
  /** sha256 of the weights file, or RANDOM_INCEPTION_ID */
  weightsId: string;
  random: boolean;
}

export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** `file`: pytorch-fid weights as safetensors; absent or 'random': the built-in random weights. */
export async function loadInception(file?: string): Promise<LoadedInception> {
  if (!file || file === 'random')
    return { model: new FidInception({ random: true }), weightsId: RANDOM_INCEPTION_ID, random: true };
  const model = await FidInception.fromSafetensors(file);
  return { model, weightsId: await fileSha256(file), random: false };
}

export interface SetStatsOptions extends ReadOptions {
  inception: LoadedInception;
  resize: FidResize;
  /** Images per Inception batch (default 8). */
  batch?: number;
  /** Folder for cached statistics; none: no cache. */
  cacheDir?: string;
  /** Inception input side (default 299, what FID references use; smaller is faster and not comparable). */
  side?: number;
  log?: (msg: string) => void;
}

export interface SetStats {
  stats: FeatureStats;
  /** What was read (absent when the statistics came from a file or the cache). */
  report?: ImageSetReport;
  from: 'images' | 'cache' | 'npz';
  cacheFile?: string;
}

/** What a set's statistics depend on: its files (name, size, mtime), the model, the resize, the count. */
async function cacheKey(dir: string, o: SetStatsOptions): Promise<string> {
  return createHash('sha256')
    .update(
      JSON.stringify({
        dir: path.resolve(dir),
        files: await imageSetFingerprint(dir, o),
        weights: o.inception.weightsId,
        resize: o.resize,
        num: o.num ?? null,
        mixed: !!o.allowMixedSizes,
        side: o.side ?? FID_INPUT_SIZE,
      }),
    )
    .digest('hex');
}

/** Pool features [n·2048] of a set, streamed in batches. */
export async function setFeatures(
  dir: string,
  o: SetStatsOptions,
): Promise<{ features: Float32Array; n: number; report: ImageSetReport }> {
  const set = await readImageSet(dir, o);
  const chunks: Float32Array[] = [];
  let n = 0;
  const batchSize = o.batch ?? 8;
  let pending: tf.Tensor3D[] = [];
  const flush = async () => {
    if (!pending.length) return;
    const x = tf.stack(pending) as tf.Tensor4D;
    const f = o.inception.model.features(x);
    chunks.push((await f.data()) as Float32Array);
    n += pending.length;
    tf.dispose([x, f, ...pending]);
    pending = [];
    o.log?.(`   ${dir}: ${n} images`);
  };
  for await (const im of set.images) {
    pending.push(fidInputImage(im.data, im.width, im.height, o.resize, o.side ?? FID_INPUT_SIZE));
    if (pending.length >= batchSize) await flush();
  }
  await flush();
  const features = new Float32Array(n * FID_FEATURE_DIM);
  let off = 0;
  for (const c of chunks) {
    features.set(c, off);
    off += c.length;
  }
  return { features, n, report: set.report };
}

/** Statistics of a folder / dataset (through the cache when given) or read from a `.npz`. */
export async function setStatistics(source: string, o: SetStatsOptions): Promise<SetStats> {
  if (source.toLowerCase().endsWith('.npz')) {
    const { stats, meta } = await loadStatsNpz(source);
    if (meta.weights && meta.weights !== o.inception.weightsId) {
      throw new Error(
        `${source}: statistics made with Inception weights ${String(meta.weights).slice(0, 12)}, not ${o.inception.weightsId.slice(0, 12)}`,
      );
    }
    return { stats, from: 'npz' };
  }
  const key = o.cacheDir ? await cacheKey(source, o) : undefined;
  const cacheFile = key ? path.join(o.cacheDir!, `${key.slice(0, 24)}.npz`) : undefined;
  if (cacheFile && existsSync(cacheFile)) {
    const { stats, meta } = await loadStatsNpz(cacheFile);
    if (meta.key === key) return { stats, from: 'cache', cacheFile };
  }
  const { features, n, report } = await setFeatures(source, o);
  const stats = featureStatistics(features, n, FID_FEATURE_DIM, source);
  if (cacheFile) {
    await saveStatsNpz(cacheFile, stats, {
      key,
      source: path.resolve(source),
      weights: o.inception.weightsId,
      resize: o.resize,
      counts: report.counts,
    });
  }
  return { stats, report, from: 'images', cacheFile };
}

export interface FidResult extends FrechetParts {
  real: Omit<SetStats, 'stats'> & { n: number };
  fake: Omit<SetStats, 'stats'> & { n: number };
}

/** FID of `fake` against `real` (folders, datasets or .npz statistics). */
export async function computeFid(
  real: string,
  fake: string,
  o: SetStatsOptions,
  cacheFake = false,
): Promise<FidResult> {
  const r = await setStatistics(real, o);
  const f = await setStatistics(fake, { ...o, cacheDir: cacheFake ? o.cacheDir : undefined });
  const parts = frechetDistance(r.stats, f.stats);
  const strip = (s: SetStats) => ({ report: s.report, from: s.from, cacheFile: s.cacheFile, n: s.stats.n });
  return { ...parts, real: strip(r), fake: strip(f) };
}
