/**
 * Training images for the VQGAN stage, read straight from a fetched dataset's WebDataset shards.
 *
 * Order (seeded, exactly resumable): epoch e visits the chosen (complete) shards in `epochOrder(shards, seed, e)`;
 * inside a shard, its usable samples (src/dataset/select.ts: the same rule tokenize caches by) are visited in a seeded
 * permutation derived from (seed, epoch, shard). Batches run across shard and epoch boundaries (an endless
 * stream). The optional horizontal flip and random crop of a sample are pure functions of (seed, epoch, shard,
 * index), so the position {epoch, position, index} is the whole state.
 * Memory: the current shard's compressed image bytes and the next shard's (prefetched); pixels only per batch.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { completeShardsSync, isShardComplete } from '../../dataset/complete-shards.ts';
import { readManifest } from '../../dataset/manifest.ts';
import { shardName, shardPaths } from '../../dataset/names.ts';
import { isUsable, usableRule, type UsableRule } from '../../dataset/select.ts';
import { imageToFloats } from '../../image/to-floats.ts';
import { imageOf, readTarSamples } from '../../shards/tar-reader.ts';
import { SeededRandom, deriveSeed, epochOrder } from '../data/random.ts';

export interface PixelDatasetOptions {
  datasetDir: string;
  /** Square side the images are resized (cover + centre crop) to. */
  resolution: number;
  batchSize: number;
  seed: number;
  /** Shard indices to read (e.g. training vs held-out validation shards); default: every complete shard. */
  shards?: number[];
  /** Also read `fallback` samples (dead-link placeholders). Default false, as tokenize. */
  includeFallbacks?: boolean;
  /** Data root whose index lists opt-outs not applied yet: those samples are skipped too. */
  dataRoot?: string;
  /** Random horizontal flips (seeded). Default false. */
  flip?: boolean;
  /** Seeded random square crops of this side from each `resolution` image (batches are [B, crop, crop, 3]). */
  crop?: number;
  resumeFrom?: PixelLoaderState;
}

/** JSON position of the loader between two `next()` calls. */
export interface PixelLoaderState {
  version: 1;
  seed: number;
  shards: number[];
  epoch: number;
  /** Index in the epoch's shard order of the shard being read, and the next index in its permutation. */
  position: number;
  index: number;
}

export interface PixelBatch {
  /** [B, R, R, 3] RGB in [0, 1]. */
  pixels: tf.Tensor4D;
  keys: string[];
  /** Epoch of the batch's first sample. */
  epoch: number;
}

export interface PixelDataset {
  next(): Promise<PixelBatch>;
  state(): PixelLoaderState;
  restore(state: PixelLoaderState): void;
  readonly shards: readonly number[];
}

interface ShardImages {
  shard: number;
  keys: string[];
  images: Buffer[];
}

/** Complete shards of the dataset (their `_stats.json` exists; a `.tar` alone is a shard fetch has not finished). */
export function listImageShards(datasetDir: string): number[] {
  return completeShardsSync(datasetDir);
}

/** Reads one shard's usable samples (compressed image bytes), in tar order. */
export async function readShardImages(datasetDir: string, shard: number, rule: UsableRule): Promise<ShardImages> {
  const file = shardPaths(datasetDir, shard).tar;
  const usable = new Set(
    (await readManifest(shardPaths(datasetDir, shard).manifest)).filter((r) => isUsable(r, rule)).map((r) => r.key),
  );
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new Error(`${file}: cannot read shard (${(err as Error).message})`);
  }
  const out: ShardImages = { shard, keys: [], images: [] };
  for await (const s of readTarSamples(file, bytes)) {
    if (!usable.has(s.key)) continue;
    const image = imageOf(s.files);
    if (!image) throw new Error(`${file}: sample ${s.key} has no image (tar and manifest disagree)`);
    out.keys.push(s.key);
    out.images.push(image);
  }
  return out;
}

/** Decodes one image with the decode tokenize uses (src/image/to-floats.ts), optionally mirrored. */
export async function decodeImage(bytes: Buffer, res: number, flip: boolean, what: string): Promise<Float32Array> {
  return imageToFloats(bytes, res, { flip, what });
}

export async function openPixelDataset(opts: PixelDatasetOptions): Promise<PixelDataset> {
  if (!Number.isInteger(opts.resolution) || opts.resolution < 1)
    throw new Error(`openPixelDataset: resolution must be a positive integer, got ${opts.resolution}`);
  if (opts.crop !== undefined && !(Number.isInteger(opts.crop) && opts.crop >= 1 && opts.crop <= opts.resolution)) {
    throw new Error(
      `openPixelDataset: crop must be an integer in [1, resolution ${opts.resolution}], got ${opts.crop}`,
    );
  }
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
    throw new Error(`openPixelDataset: batchSize must be a positive integer, got ${opts.batchSize}`);
  const shards = opts.shards ?? listImageShards(opts.datasetDir);
  if (!shards.length)
    throw new Error(
      `openPixelDataset: no shards complete (fetch writes a shard's _stats.json last) in ${opts.datasetDir} (run muse-data fetch)`,
    );
  for (const s of shards) {
    if (!Number.isInteger(s) || s < 0)
      throw new Error(`openPixelDataset: shard index must be an integer >= 0, got ${s}`);
    const { tar, stats } = shardPaths(opts.datasetDir, s);
    if (!existsSync(tar)) throw new Error(`openPixelDataset: shard ${s} is missing (${tar})`);
    if (!isShardComplete(opts.datasetDir, s))
      throw new Error(`openPixelDataset: shard ${shardName(s)} is incomplete (no ${stats}; fetch has not finished it)`);
  }
  const rule = await usableRule(opts.datasetDir, { dataRoot: opts.dataRoot, includeFallbacks: opts.includeFallbacks });
  const loader = new PixelLoader(opts, [...shards], rule);
  if (opts.resumeFrom) loader.restore(opts.resumeFrom);
  return loader;
}

class PixelLoader implements PixelDataset {
  private epoch = 0;
  private position = 0;
  private index = 0;
  private cache = new Map<string, Promise<ShardImages>>();
  /** Shard reads in a row that gave no sample; a whole epoch of them means nothing is usable. */
  private emptyRun = 0;

  constructor(
    private readonly opts: PixelDatasetOptions,
    readonly shards: number[],
    private readonly rule: UsableRule,
  ) {}

  state(): PixelLoaderState {
    return {
      version: 1,
      seed: this.opts.seed,
      shards: [...this.shards],
      epoch: this.epoch,
      position: this.position,
      index: this.index,
    };
  }

  restore(s: PixelLoaderState): void {
    if (!s || s.version !== 1) throw new Error('pixel loader state: unsupported or missing version');
    if (s.seed !== this.opts.seed)
      throw new Error(`pixel loader state: seed ${s.seed} differs from the run's seed ${this.opts.seed}`);
    if (s.shards.join(',') !== this.shards.join(','))
      throw new Error('pixel loader state: it was taken with a different shard list');
    const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
    if (!ok(s.epoch) || !ok(s.position) || !ok(s.index) || s.position > this.shards.length) {
      throw new Error(
        `pixel loader state: bad position ${JSON.stringify({ epoch: s.epoch, position: s.position, index: s.index })}`,
      );
    }
    this.epoch = s.epoch;
    this.position = s.position;
    this.index = s.index;
    this.cache.clear();
  }

  private load(epoch: number, position: number): Promise<ShardImages> {
    const shard = this.shards[epochOrder(this.shards.length, this.opts.seed, epoch)[position]];
    const id = `${epoch}:${position}`;
    let p = this.cache.get(id);
    if (!p) {
      p = readShardImages(this.opts.datasetDir, shard, this.rule);
      p.catch(() => undefined); // surfaced when awaited
      this.cache.set(id, p);
    }
    return p;
  }

  private nextPosition(epoch: number, position: number): [number, number] {
    return position + 1 < this.shards.length ? [epoch, position + 1] : [epoch + 1, 0];
  }

  /** Current shard (and start of the next one's read); keeps only these two in the cache. */
  private async current(): Promise<ShardImages> {
    const data = await this.load(this.epoch, this.position);
    const [ne, np] = this.nextPosition(this.epoch, this.position);
    this.load(ne, np);
    const keep = new Set([`${this.epoch}:${this.position}`, `${ne}:${np}`]);
    for (const id of this.cache.keys()) if (!keep.has(id)) this.cache.delete(id);
    return data;
  }

  private permutation(shard: number, n: number): number[] {
    const rng = new SeededRandom(deriveSeed(deriveSeed(this.opts.seed, 21, this.epoch), 22, shard));
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.below(i + 1);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }

  private advanceShard(): void {
    [this.epoch, this.position] = this.nextPosition(this.epoch, this.position);
    this.index = 0;
  }

  async next(): Promise<PixelBatch> {
    const { batchSize, resolution: res } = this.opts;
    const crop = this.opts.crop ?? res;
    const picks: Array<{ bytes: Buffer; key: string; flip: boolean; x: number; y: number }> = [];
    const firstEpoch = this.epoch;
    while (picks.length < batchSize) {
      const data = await this.current();
      if (this.index >= data.keys.length) {
        if (data.keys.length === 0 && ++this.emptyRun >= this.shards.length) {
          const statuses = this.rule.includeFallbacks ? 'ok/fallback' : 'ok';
          throw new Error(
            `no usable samples (status ${statuses}, not a duplicate, not opted out) in shards [${this.shards.join(', ')}] of ${this.opts.datasetDir}`,
          );
        }
        this.advanceShard();
        continue;
      }
      this.emptyRun = 0;
      const perm = this.permutation(data.shard, data.keys.length);
      while (picks.length < batchSize && this.index < data.keys.length) {
        const i = perm[this.index];
        const flip =
          !!this.opts.flip &&
          new SeededRandom(deriveSeed(deriveSeed(this.opts.seed, 23, this.epoch), data.shard, this.index)).next() < 0.5;
        const at = new SeededRandom(deriveSeed(deriveSeed(this.opts.seed, 24, this.epoch), data.shard, this.index));
        const [x, y] = crop < res ? [at.below(res - crop + 1), at.below(res - crop + 1)] : [0, 0];
        picks.push({ bytes: data.images[i], key: data.keys[i], flip, x, y });
        this.index++;
      }
    }
    const decoded = await Promise.all(picks.map((p) => decodeImage(p.bytes, res, p.flip, `sample ${p.key}`)));
    const flat = new Float32Array(batchSize * crop * crop * 3);
    decoded.forEach((d, i) => {
      const p = picks[i];
      for (let row = 0; row < crop; row++) {
        const src = ((p.y + row) * res + p.x) * 3;
        flat.set(d.subarray(src, src + crop * 3), (i * crop + row) * crop * 3);
      }
    });
    return { pixels: tf.tensor4d(flat, [batchSize, crop, crop, 3]), keys: picks.map((p) => p.key), epoch: firstEpoch };
  }
}
