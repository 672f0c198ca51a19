/**
 * The explorer's copy of the shard manifests in the index (`explore_samples`, with FTS5 over captions): one row
 * per input row. A shard is (re)loaded when its stats file — written last, and rewritten by `optout apply` and
 * `dedup --apply` — changed since the last load; incomplete shards are not shown.
 */
import { statSync } from 'node:fs';
import type { DatasetRow, IndexDb } from '../../index-db/db.ts';
import { readManifest } from '../../dataset/manifest.ts';
import { shardPaths } from '../../dataset/names.ts';
import { completeShardsSync } from '../../dataset/complete-shards.ts';

/** Complete shards (the dataset's rule) with a stamp of their stats file, which changes when a shard is rewritten. */
function completeShards(datasetDir: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const shard of completeShardsSync(datasetDir)) {
    const st = statSync(shardPaths(datasetDir, shard).stats, { throwIfNoEntry: false });
    if (st) out.set(shard, `${st.mtimeMs}:${st.size}`);
  }
  return out;
}

export interface SyncResult {
  /** Shards (re)loaded. */
  loaded: number;
  /** Shards whose manifest could not be read, with why (naming the file); the others are shown. */
  damaged: string[];
}

/** Brings the dataset's explorer rows up to date; a damaged manifest is reported and skipped, not fatal. */
export async function syncDataset(index: IndexDb, d: DatasetRow): Promise<SyncResult> {
  const damaged: string[] = [];
  const shards = completeShards(d.path);
  const known = new Map(
    (
      index.stmt('SELECT shard, stamp FROM explore_shards WHERE dataset_id = ?').all(d.id) as Array<{
        shard: number;
        stamp: string;
      }>
    ).map((r) => [r.shard, r.stamp]),
  );
  let loaded = 0;
  for (const [shard, stamp] of [...shards].sort((a, b) => a[0] - b[0])) {
    if (known.get(shard) === stamp) continue;
    let rows;
    try {
      rows = await readManifest(shardPaths(d.path, shard).manifest);
    } catch (err) {
      damaged.push((err as Error).message);
      continue;
    }
    const ins = index.stmt(
      `INSERT INTO explore_samples(dataset_id, key, shard, status, reason, width, height, original_width, original_height, url, caption, meta)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    index.write(() => {
      index.stmt('DELETE FROM explore_samples WHERE dataset_id = ? AND shard = ?').run(d.id, shard);
      for (const r of rows)
        ins.run(
          d.id,
          r.key,
          shard,
          r.status,
          r.reason,
          r.width,
          r.height,
          r.original_width,
          r.original_height,
          r.url,
          r.caption,
          r.meta,
        );
      index
        .stmt(
          'INSERT INTO explore_shards(dataset_id, shard, stamp) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET stamp = excluded.stamp',
        )
        .run(d.id, shard, stamp);
    });
    loaded++;
  }
  for (const shard of known.keys()) {
    if (shards.has(shard)) continue;
    index.write(() => {
      index.stmt('DELETE FROM explore_samples WHERE dataset_id = ? AND shard = ?').run(d.id, shard);
      index.stmt('DELETE FROM explore_shards WHERE dataset_id = ? AND shard = ?').run(d.id, shard);
    });
  }
  return { loaded, damaged };
}
