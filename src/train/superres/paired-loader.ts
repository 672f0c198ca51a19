/**
 * The super-res stage's data: two token caches of the same dataset side by side (the base VQ's low-res tokens
 * with the text, and the high-res VQ's tokens), read by two loaders with the same seed and shards. Both
 * caches are written by `muse-data tokenize --vq BASE --vq HIGH` from the same shard samples, so the loaders
 * walk the same keys in the same order; every batch is checked key by key.
 */
import {
  openTokenDataset,
  type Batch,
  type LoaderState,
  type TokenDataset,
  type TokenDatasetOptions,
} from '../data/loader.ts';

export interface PairedBatch extends Batch {
  /** [B, n_low] low-res token ids and their shape. */
  lowresIds: Int32Array;
  lowresShape: [number, number];
}

export interface PairedState {
  lowres: LoaderState;
  hires: LoaderState;
}

/** `opts.vqId` is the high-res cache; `lowresVqId` the base cache (read with the text). */
export async function openPairedDataset(opts: TokenDatasetOptions, lowresVqId: string): Promise<TokenDataset> {
  const lowres = await openTokenDataset({ ...opts, vqId: lowresVqId });
  const hires = await openTokenDataset({ ...opts, textId: undefined, classIds: false });
  if (lowres.shardCount !== hires.shardCount) {
    throw new Error(
      `the low-res cache tokens/${lowresVqId} has ${lowres.shardCount} shard(s), the high-res cache tokens/${opts.vqId} ${hires.shardCount}: tokenize both with the same --shards`,
    );
  }
  const next = async (): Promise<PairedBatch> => {
    const [lo, hi] = await Promise.all([lowres.next(), hires.next()]);
    if (lo.size !== hi.size || lo.keys.some((k, i) => k !== hi.keys[i])) {
      const i = lo.keys.findIndex((k, j) => k !== hi.keys[j]);
      throw new Error(
        `the low-res (tokens/${lowresVqId}) and high-res (tokens/${opts.vqId}) caches do not hold the same samples ` +
          `(sample ${lo.keys[i] ?? '?'} vs ${hi.keys[i] ?? '?'}): re-run muse-data tokenize with both --vq over the same shards`,
      );
    }
    return { ...hi, ...textOf(lo), lowresIds: lo.imageIds, lowresShape: lo.imageShape };
  };
  return {
    next,
    state: () => ({ lowres: lowres.state(), hires: hires.state() }) as unknown as LoaderState,
    async restore(state: LoaderState) {
      const s = state as unknown as PairedState;
      if (!s || !s.lowres || !s.hires)
        throw new Error('checkpoint loader state is not a super-res (paired) state: was it written by another stage?');
      await lowres.restore(s.lowres);
      await hires.restore(s.hires);
    },
    emptyText: () => lowres.emptyText(),
    shardCount: hires.shardCount,
    async *[Symbol.asyncIterator]() {
      for (;;) yield await next();
    },
  };
}

function textOf(b: Batch): Partial<Batch> {
  return {
    textHidden: b.textHidden,
    textShape: b.textShape,
    textMask: b.textMask,
    textLengths: b.textLengths,
    pooled: b.pooled,
    pooledShape: b.pooledShape,
  };
}
