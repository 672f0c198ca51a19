/**
 * Writes small deterministic token + text caches in the cache format (src/dataset/cache-format.ts), for the
 * loader's tests and benchmark. Every value is a function of (shard, position), so readers can check them.
 * Half values are multiples of 1/8 in [-4, 4): exact in float16.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cacheShardPath, tableBytes, textTable, tokenTable } from '../../src/dataset/cache-format.ts';
import { encodeFloat16 } from '../../src/runtime/float16.ts';
import { sampleKey, shardName } from '../../src/dataset/names.ts';
import { concatFloat32 } from '../../src/util/typed-arrays.ts';

export interface SyntheticCacheOptions {
  /** Samples per shard index (positions 0..count-1). */
  shards: Record<number, number>;
  vqId?: string;
  textId?: string;
  gridH?: number;
  gridW?: number;
  codebookSize?: number;
  dim?: number;
  pooledDim?: number;
  /** Text length of a sample (default 1 + (shard + pos) % 5). */
  textLength?: (shard: number, pos: number) => number;
  /** Leave out the text cache. */
  noText?: boolean;
}

export const syntheticToken = (shard: number, pos: number, j: number, codebook: number) =>
  (shard * 7919 + pos * 131 + j * 17) % codebook;
export const syntheticHidden = (shard: number, pos: number, t: number, d: number) =>
  ((shard * 13 + pos * 7 + t * 3 + d) % 64) / 8 - 4;
export const syntheticPooled = (shard: number, pos: number, k: number) => (shard + pos + k) / 4;
export const defaultTextLength = (shard: number, pos: number) => 1 + ((shard + pos) % 5);

export function syntheticKey(shard: number, pos: number): string {
  return sampleKey(shard, pos, 10_000);
}

export async function writeSyntheticCaches(datasetDir: string, o: SyntheticCacheOptions): Promise<void> {
  const vqId = o.vqId ?? 'vq-test';
  const textId = o.textId ?? 'text-test';
  const [gridH, gridW, codebook, dim] = [o.gridH ?? 2, o.gridW ?? 3, o.codebookSize ?? 1024, o.dim ?? 4];
  const n = gridH * gridW;
  const textLength = o.textLength ?? defaultTextLength;
  const manifest = {
    tokens: {} as Record<string, { samples: number }>,
    text: {} as Record<string, { samples: number }>,
  };
  for (const [shardStr, count] of Object.entries(o.shards)) {
    const shard = Number(shardStr);
    const keys = Array.from({ length: count }, (_, p) => syntheticKey(shard, p));
    const tokens = new Int32Array(count * n);
    for (let p = 0; p < count; p++)
      for (let j = 0; j < n; j++) tokens[p * n + j] = syntheticToken(shard, p, j, codebook);
    await put(
      cacheShardPath(datasetDir, 'vq', vqId, shard),
      tableBytes(tokenTable({ keys, tokens, gridH, gridW, codebookSize: codebook, vqId })),
    );
    manifest.tokens[shardName(shard)] = { samples: count };
    if (o.noText) continue;
    const rows = keys.map((_, p) => syntheticText(shard, p, textLength(shard, p), dim, o.pooledDim));
    const pooled = o.pooledDim ? concatFloat32(rows.map((r) => r.pooled!)) : undefined;
    const table = textTable({
      keys,
      ids: rows.map((r) => r.ids),
      hidden: rows.map((r) => r.hidden),
      pooled,
      dim,
      pooledDim: o.pooledDim,
      encoderId: textId,
    });
    await put(cacheShardPath(datasetDir, 'text', textId, shard), tableBytes(table));
    manifest.text[shardName(shard)] = { samples: count };
  }
  await put(
    path.join(datasetDir, 'tokens', vqId, 'manifest.json'),
    JSON.stringify({ kind: 'vq', id: vqId, shards: manifest.tokens }),
  );
  if (o.noText) return;
  await put(
    path.join(datasetDir, 'text', textId, 'manifest.json'),
    JSON.stringify({ kind: 'text', id: textId, shards: manifest.text }),
  );
  const empty = syntheticText(99999, 0, 2, dim, o.pooledDim);
  const emptyTable = textTable({
    keys: [''],
    ids: [empty.ids],
    hidden: [empty.hidden],
    pooled: empty.pooled,
    dim,
    pooledDim: o.pooledDim,
    encoderId: textId,
  });
  await put(path.join(datasetDir, 'text', textId, 'empty.arrow'), tableBytes(emptyTable));
}

function syntheticText(shard: number, pos: number, length: number, dim: number, pooledDim?: number) {
  const values = new Float32Array(length * dim);
  for (let t = 0; t < length; t++)
    for (let d = 0; d < dim; d++) values[t * dim + d] = syntheticHidden(shard, pos, t, d);
  const pooled = pooledDim
    ? Float32Array.from({ length: pooledDim }, (_, k) => syntheticPooled(shard, pos, k))
    : undefined;
  return { ids: Int32Array.from({ length }, (_, t) => t + 1), hidden: encodeFloat16(values), pooled };
}

async function put(file: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, data);
}
