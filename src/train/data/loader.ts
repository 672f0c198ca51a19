/**
 * Training loader over token caches: image token ids + text encoder states (+ pooled, + ImageNet class
 * ids), shard order shuffled per epoch and a shuffle buffer, both from a seed, and an exactly resumable position.
 *
 * Stream: epoch e reads the shards in `epochOrder(shards, seed, e)`, row by row, skipping dedup decisions and
 * opt-outs not applied yet (the usable-sample rule, src/dataset/select.ts); a
 * buffer of `shuffleBuffer` samples is kept full and each output sample is drawn from it at random (then the
 * last one takes its place). The buffer drains at the end of an epoch, so an epoch holds every sample once
 * (or as often as its dataset's weight says).
 * With `dropLast` (default) the epoch's incomplete last batch is dropped, else it comes out short.
 * Memory: the current shard, the next one (prefetched, across epochs too), and copies of the buffered samples
 * (shuffleBuffer x one sample: 118 KB for 77x768 float16 states).
 */
import { usableRule } from '../../dataset/select.ts';
import { shardName } from '../../dataset/names.ts';
import { cacheDir } from '../../dataset/cache-format.ts';
import { hasClassIds, listShards, loadShardData, sampleOf, type ShardData, type ShardRef } from './shard-data.ts';
import { assembleBatch, type Batch, type Sample } from './batch.ts';
import { SeededRandom, deriveSeed, epochOrder, weightedEpochOrder } from './random.ts';
import { readEmptyText, type EmptyText } from './empty-text.ts';

export type { Batch } from './batch.ts';

export interface TokenDatasetOptions {
  datasetDir?: string;
  /** Several datasets read as one: their shards are pooled. */
  datasetDirs?: string[];
  /**
   * Per dataset of `datasetDirs`: how many times its shards are read per epoch (2: twice; 0.5: a seeded half of
   * them, different each epoch). Default 1 each.
   */
  weights?: number[];
  vqId: string;
  /** Text encoder cache id; without it, batches hold image tokens (and class ids) only. */
  textId?: string;
  /** Shard indices to read (of every dataset); default: those in the token cache manifest, else all files. */
  shards?: number[];
  batchSize: number;
  seed: number;
  /** Shuffle buffer size in samples (0 or 1: shard order only). */
  shuffleBuffer: number;
  /** Drop each epoch's incomplete last batch (default true); false gives it short. */
  dropLast?: boolean;
  /** Pad/truncate text states to this length; default: the longest text of each batch. */
  textMaxLength?: number;
  /** ImageNet class ids from the shard manifests' `cls` column; default: when the first shard's manifest has them. */
  classIds?: boolean;
  resumeFrom?: LoaderState;
  /**
   * Data root whose index lists opt-outs not applied yet: those rows are skipped like dedup decisions (the
   * usable-sample rule, src/dataset/select.ts; the caches hold only usable samples as of tokenize).
   */
  dataRoot?: string;
}

/** JSON-serialisable position of a loader, taken between two `next()` calls. */
export interface LoaderState {
  version: 1;
  seed: number;
  /** The shard list it was taken with ("dataset:shard", with "*weight" when weighted), checked on restore. */
  shards: string[];
  epoch: number;
  /** Index in the epoch's shard order of the shard being read, and the next row of it. */
  position: number;
  row: number;
  /** Shuffle PRNG state. */
  rng: number;
  /** The epoch's shards are all read (the buffer is draining). */
  exhausted: boolean;
  /** Samples drawn in this epoch so far. */
  drawn: number;
  /** Buffer contents in order: [shard list index, row, key]. */
  buffer: Array<[number, number, string]>;
}

export interface TokenDataset extends AsyncIterable<Batch> {
  next(): Promise<Batch>;
  state(): LoaderState;
  restore(state: LoaderState): Promise<void>;
  /** The empty-caption embedding (classifier-free guidance), from the first dataset's text cache. */
  emptyText(): Promise<EmptyText>;
  readonly shardCount: number;
}

export async function openTokenDataset(opts: TokenDatasetOptions): Promise<TokenDataset> {
  const dirs = opts.datasetDirs ?? (opts.datasetDir ? [opts.datasetDir] : []);
  if (!dirs.length) throw new Error('openTokenDataset: give datasetDir or datasetDirs');
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
    throw new Error(`openTokenDataset: batchSize must be a positive integer, got ${opts.batchSize}`);
  if (!Number.isInteger(opts.shuffleBuffer) || opts.shuffleBuffer < 0)
    throw new Error(`openTokenDataset: shuffleBuffer must be an integer >= 0, got ${opts.shuffleBuffer}`);
  const refs: ShardRef[] = [];
  const duplicates: Array<Set<string>> = [];
  for (const [dataset, dir] of dirs.entries()) {
    for (const shard of opts.shards ?? (await listShards(dir, opts.vqId))) refs.push({ dir, dataset, shard });
    // the caches hold the usable samples as of tokenize; what became unusable since is skipped here
    duplicates.push((await usableRule(dir, { dataRoot: opts.dataRoot })).exclude);
  }
  if (!refs.length)
    throw new Error(`no token cache shards in ${dirs.join(', ')} (tokens/${opts.vqId}/): run muse-data tokenize`);
  if (opts.weights && (opts.weights.length !== dirs.length || opts.weights.some((w) => !(w >= 0)))) {
    throw new Error(
      `weights: one non-negative number per dataset (${dirs.length}), got ${JSON.stringify(opts.weights)}`,
    );
  }
  const withClasses = opts.classIds ?? (await hasClassIds(refs[0]));
  const loader = new Loader(opts, refs, duplicates, withClasses);
  if (opts.resumeFrom) await loader.restore(opts.resumeFrom);
  return loader;
}

class Loader implements TokenDataset {
  private readonly rng: SeededRandom;
  private epoch = 0;
  private order: number[] = [];
  private position = 0;
  private row = 0;
  private exhausted = false;
  private drawn = 0;
  private buffer: Sample[] = [];
  private current?: ShardData;
  private prefetch?: { ref: number; data: Promise<ShardData> };
  private busy = false;

  constructor(
    private readonly opts: TokenDatasetOptions,
    private readonly refs: ShardRef[],
    private readonly duplicates: Array<Set<string>>,
    private readonly withClasses: boolean,
  ) {
    this.rng = new SeededRandom(deriveSeed(opts.seed, 2, 0));
    this.startEpoch(0);
  }

  get shardCount(): number {
    return this.refs.length;
  }

  [Symbol.asyncIterator](): AsyncIterator<Batch> {
    return { next: async () => ({ value: await this.next(), done: false }) };
  }

  async next(): Promise<Batch> {
    if (this.busy) throw new Error('loader: next() called again before the previous batch resolved');
    this.busy = true;
    try {
      return await this.nextBatch();
    } finally {
      this.busy = false;
    }
  }

  private async nextBatch(): Promise<Batch> {
    const size = this.opts.batchSize;
    const samples: Sample[] = [];
    let epoch = this.epoch;
    while (samples.length < size) {
      const s = await this.nextSample();
      if (s) {
        samples.push(s);
        continue;
      }
      const drawn = this.drawn;
      this.startEpoch(this.epoch + 1);
      if (drawn === 0) throw new Error(`loader: an epoch with no samples (shards: ${this.describeShards()})`);
      if (samples.length && this.opts.dropLast === false) break;
      if (samples.length === drawn)
        throw new Error(
          `loader: an epoch holds ${drawn} samples, fewer than the batch size ${size} (training.batch_size is the global batch of one update: lower it, or train on more samples)`,
        );
      samples.length = 0;
      epoch = this.epoch;
    }
    return assembleBatch(samples, epoch, this.opts.textMaxLength);
  }

  private startEpoch(epoch: number): void {
    this.epoch = epoch;
    this.order = this.orderOf(epoch);
    this.position = 0;
    this.row = 0;
    this.exhausted = false;
    this.drawn = 0;
  }

  private orderOf(epoch: number): number[] {
    const weights = this.opts.weights;
    if (!weights) return epochOrder(this.refs.length, this.opts.seed, epoch);
    const groups = weights.map((_, d) => this.refs.flatMap((r, i) => (r.dataset === d ? [i] : [])));
    return weightedEpochOrder(groups, weights, this.opts.seed, epoch);
  }

  /** Next sample out of the shuffle buffer, or null at the end of the epoch. */
  private async nextSample(): Promise<Sample | null> {
    const capacity = Math.max(1, this.opts.shuffleBuffer);
    while (!this.exhausted && this.buffer.length < capacity) {
      const s = await this.readNext();
      if (s) this.buffer.push(s);
      else this.exhausted = true;
    }
    const buf = this.buffer;
    if (!buf.length) return null;
    const j = this.rng.below(buf.length);
    const out = buf[j];
    buf[j] = buf[buf.length - 1];
    buf.pop();
    this.drawn++;
    return out;
  }

  /** Next sample of the epoch's shard stream, or null when all its shards are read. */
  private async readNext(): Promise<Sample | null> {
    for (;;) {
      if (this.position >= this.order.length) return null;
      const data = await this.shardAt(this.position);
      if (this.row >= data.tokens.keys.length) {
        this.position++;
        this.row = 0;
        continue;
      }
      const row = this.row++;
      const dup = this.duplicates[this.refs[data.ref].dataset];
      if (dup.size && dup.has(data.tokens.keys[row])) continue;
      return sampleOf(data, row);
    }
  }

  /** The shard at `position` of this epoch's order (loaded, or taken from the prefetch); prefetches the next. */
  private async shardAt(position: number): Promise<ShardData> {
    const ref = this.order[position];
    if (this.current?.ref !== ref) {
      this.current = undefined;
      const pending = this.prefetch?.ref === ref ? this.prefetch.data : this.loadShard(ref);
      this.prefetch = undefined;
      this.current = await pending;
      // the next shard of this epoch, or the first of the next one
      const nextRef = position + 1 < this.order.length ? this.order[position + 1] : this.orderOf(this.epoch + 1)[0];
      if (nextRef !== undefined && nextRef !== ref) {
        const data = this.loadShard(nextRef);
        data.catch(() => {}); // reported when awaited
        this.prefetch = { ref: nextRef, data };
      }
    }
    return this.current;
  }

  private loadShard(ref: number): Promise<ShardData> {
    return loadShardData(this.refs[ref], ref, this.opts.vqId, this.opts.textId, this.withClasses);
  }

  state(): LoaderState {
    if (this.busy) throw new Error('loader: state() taken while a batch is being read');
    return {
      version: 1,
      seed: this.opts.seed,
      shards: this.describeShardList(),
      epoch: this.epoch,
      position: this.position,
      row: this.row,
      rng: this.rng.state,
      exhausted: this.exhausted,
      drawn: this.drawn,
      buffer: this.buffer.map((s) => [s.ref, s.row, s.key]),
    };
  }

  async restore(state: LoaderState): Promise<void> {
    if (this.busy) throw new Error('loader: restore() called while a batch is being read');
    if (state.version !== 1) throw new Error(`loader state version ${String(state.version)} is not supported`);
    if (state.seed !== this.opts.seed)
      throw new Error(`loader state was saved with seed ${state.seed}, this loader has seed ${this.opts.seed}`);
    const shards = this.describeShardList();
    if (state.shards.join(',') !== shards.join(','))
      throw new Error('loader state was saved with a different shard list (datasets or --shards changed)');
    // rebuild the buffer: read each shard it refers to once, copy the rows out
    const byRef = new Map<number, number[]>();
    state.buffer.forEach(([ref], i) => byRef.set(ref, [...(byRef.get(ref) ?? []), i]));
    const buffer = new Array<Sample>(state.buffer.length);
    for (const [ref, slots] of byRef) {
      const data = await this.loadShard(ref);
      for (const i of slots) {
        const [, row, key] = state.buffer[i];
        if (data.tokens.keys[row] !== key)
          throw new Error(
            `loader state: row ${row} of shard ${this.describeRef(ref)} is ${data.tokens.keys[row]}, expected ${key}: the cache changed since the state was saved`,
          );
        buffer[i] = sampleOf(data, row);
      }
    }
    this.startEpoch(state.epoch);
    this.position = state.position;
    this.row = state.row;
    this.exhausted = state.exhausted;
    this.drawn = state.drawn;
    this.buffer = buffer;
    this.rng.state = state.rng >>> 0;
    this.current = undefined;
    this.prefetch = undefined;
  }

  async emptyText(): Promise<EmptyText> {
    if (!this.opts.textId) throw new Error('emptyText(): the loader was opened without a textId');
    return readEmptyText(cacheDir(this.refs[0].dir, 'text', this.opts.textId));
  }

  private describeShardList(): string[] {
    const w = this.opts.weights;
    return this.refs.map((r) => `${r.dataset}:${r.shard}${w ? `*${w[r.dataset]}` : ''}`);
  }

  private describeRef(ref: number): string {
    const r = this.refs[ref];
    return `${shardName(r.shard)} of ${r.dir}`;
  }

  private describeShards(): string {
    return this.refs.map((_, i) => this.describeRef(i)).join(', ');
  }
}
