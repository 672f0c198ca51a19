/**
 * The complete-shard rule, in one place: a shard is complete iff its `shards/{i:05d}_stats.json` exists (fetch
 * writes it last, after the tar and the manifest). A `.tar` without it is a shard fetch has not finished.
 */
import { existsSync, readdirSync } from 'node:fs';
import { shardOfStatsFile, shardPaths, shardsDir } from './names.ts';

export function isShardComplete(datasetDir: string, shard: number): boolean {
  return existsSync(shardPaths(datasetDir, shard).stats);
}

/** Complete shards, ascending; with `selection`, only those in it. */
export function completeShardsSync(datasetDir: string, selection?: readonly number[]): number[] {
  const dir = shardsDir(datasetDir);
  if (!existsSync(dir)) return [];
  const wanted = selection ? new Set(selection) : undefined;
  const out: number[] = [];
  for (const f of readdirSync(dir)) {
    const i = shardOfStatsFile(f);
    if (i === null) continue;
    if (!wanted || wanted.has(i)) out.push(i);
  }
  return out.sort((a, b) => a - b);
}

export async function completeShards(datasetDir: string, selection?: readonly number[]): Promise<number[]> {
  return completeShardsSync(datasetDir, selection);
}
