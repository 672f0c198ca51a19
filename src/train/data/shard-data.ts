/** One shard of a dataset's token (+ text, + class id) caches, loaded whole, and samples copied out of it. */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { shardPaths } from '../../dataset/names.ts';
import { cacheDir, cacheShardPath, readCacheManifest } from '../../dataset/cache-format.ts';
import { readClassIds, readTable, textShard, tokenShard, type TextShard, type TokenShard } from './cache-reader.ts';
import type { Sample } from './batch.ts';

export interface ShardRef {
  dir: string;
  dataset: number;
  shard: number;
}

export interface ShardData {
  ref: number;
  tokens: TokenShard;
  text?: TextShard;
  /** Class id per row. */
  cls?: Int32Array;
}

export async function listShards(dir: string, vqId: string): Promise<number[]> {
  const cache = cacheDir(dir, 'vq', vqId);
  const manifest = await readCacheManifest(cache);
  if (manifest)
    return Object.keys(manifest.shards ?? {})
      .map(Number)
      .sort((a, b) => a - b);
  if (!existsSync(cache)) return [];
  return (await readdir(cache))
    .filter((f) => /^\d{5,}\.arrow$/.test(f))
    .map((f) => Number(f.slice(0, -6)))
    .sort((a, b) => a - b);
}

export async function hasClassIds(ref: ShardRef): Promise<boolean> {
  const file = shardPaths(ref.dir, ref.shard).manifest;
  return existsSync(file) && (await readClassIds(file)).size > 0;
}

export async function loadShardData(
  r: ShardRef,
  ref: number,
  vqId: string,
  textId: string | undefined,
  withClasses: boolean,
): Promise<ShardData> {
  const { dir, shard } = r;
  const tokenFile = cacheShardPath(dir, 'vq', vqId, shard);
  const textFile = textId ? cacheShardPath(dir, 'text', textId, shard) : undefined;
  const [tokenTable, textTable, classes] = await Promise.all([
    readTable(tokenFile),
    textFile ? readTable(textFile) : undefined,
    withClasses ? readClassIds(shardPaths(dir, shard).manifest) : undefined,
  ]);
  const tokens = tokenShard(tokenTable, tokenFile);
  const text = textTable && textFile ? textShard(textTable, textFile) : undefined;
  if (text) checkSameKeys(tokens.keys, text.keys, tokenFile, textFile!, dir);
  let cls: Int32Array | undefined;
  if (classes) {
    cls = new Int32Array(tokens.keys.length);
    for (const [i, key] of tokens.keys.entries()) {
      const c = classes.get(key);
      if (c === undefined) throw new Error(`${shardPaths(dir, shard).manifest}: no class id for sample ${key}`);
      cls[i] = c;
    }
  }
  return { ref, tokens, text, cls };
}

function checkSameKeys(
  tokenKeys: string[],
  textKeys: string[],
  tokenFile: string,
  textFile: string,
  dir: string,
): void {
  const n = Math.max(tokenKeys.length, textKeys.length);
  for (let i = 0; i < n; i++) {
    if (tokenKeys[i] !== textKeys[i]) {
      throw new Error(
        `cache mismatch: ${tokenFile} and ${textFile} disagree at row ${i} (key ${tokenKeys[i] ?? '<none>'} vs ${textKeys[i] ?? '<none>'}; ` +
          `${tokenKeys.length} vs ${textKeys.length} rows): run \`muse-data verify ${dir}\` and re-tokenize the stale cache`,
      );
    }
  }
}

/** Copies row `row` of a loaded shard out (a buffered sample must not pin the whole shard in memory). */
export function sampleOf(data: ShardData, row: number): Sample {
  const { tokens: t, text } = data;
  const sample: Sample = {
    ref: data.ref,
    row,
    key: t.keys[row],
    tokens: t.tokens.slice(row * t.n, (row + 1) * t.n),
    gridH: t.gridH,
    gridW: t.gridW,
  };
  if (text) {
    const dim = text.dim;
    sample.textLength = text.offsets[row + 1] - text.offsets[row];
    sample.hidden = text.hidden.slice(text.offsets[row] * dim, text.offsets[row + 1] * dim);
    sample.dim = dim;
    if (text.pooled) sample.pooled = text.pooled.slice(row * text.pooledDim, (row + 1) * text.pooledDim);
  }
  if (data.cls) sample.cls = data.cls[row];
  return sample;
}
