/**
 * Fallback for shards fetched before the index existed (or everything with `--reindex`): records the complete
 * shards' manifest rows in the index's `samples` table, as fetch would have.
 */
import { existsSync } from 'node:fs';
import type { IndexDb, SampleInput } from '../index-db/db.ts';
import { completeShards } from '../dataset/complete-shards.ts';
import { readManifest } from '../dataset/manifest.ts';
import { shardPaths, shardsDir } from '../dataset/names.ts';

/**
 * Indexes the complete shards (those with a stats file) that have no sample in the index yet, or all of them
 * with `all`; returns how many shards and samples it recorded.
 */
export async function indexFromManifests(
  index: IndexDb,
  datasetId: number,
  datasetDir: string,
  all = false,
): Promise<{ shards: number; samples: number }> {
  const dir = shardsDir(datasetDir);
  if (!existsSync(dir)) throw new Error(`${datasetDir} has no shards/ folder: not a dataset made by muse-data fetch`);
  const shards = await completeShards(datasetDir);
  const known = new Set(
    index.db.prepare('SELECT DISTINCT shard FROM samples WHERE dataset_id = ?').pluck().all(datasetId) as number[],
  );
  const todo = all ? shards : shards.filter((s) => !known.has(s));
  let samples = 0;
  for (const shard of todo) {
    const rows: SampleInput[] = (await readManifest(shardPaths(datasetDir, shard).manifest))
      .filter((r) => r.url)
      .map((r) => ({
        key: r.key,
        shard,
        url: r.url,
        sha256: r.sha256,
        phash: r.phash,
        caption: r.caption,
        status: r.status,
      }));
    index.recordSamples(datasetId, rows);
    samples += rows.length;
  }
  return { shards: todo.length, samples };
}
