/**
 * Samples of a dataset still in their tar (status ok / fallback in the old samples table) whose URL or image
 * sha256 is opted out, URL matches first: the part of `SampleIndex.optedOutSamples` (src/dataset/sample-index.ts)
 * for shards that have no run yet.
 */
import type { IndexDb } from './db.ts';

export interface OptoutMatch {
  key: string;
  shard: number;
  /** Matched by the image's sha256 (else by URL). */
  byImage: boolean;
}

/**
 * Each join is driven from its smaller side (CROSS JOIN fixes SQLite's loop order): a few opt-outs against a big
 * dataset probe the samples' url_hash / sha256 indexes; a big opt-out list against a small dataset probes the list.
 */
export function optedOutSamples(index: IndexDb, datasetId: number): OptoutMatch[] {
  const count = (sql: string, ...args: unknown[]) =>
    index
      .stmt(sql)
      .pluck()
      .get(...args) as number;
  const samples = count('SELECT count(*) FROM samples WHERE dataset_id = ?', datasetId);
  const joinFrom = (table: 'optout_urls' | 'optout_images', col: 'url_hash' | 'sha256') =>
    count(`SELECT count(*) FROM ${table}`) < samples
      ? `${table} o CROSS JOIN samples s ON s.${col} = o.${col} AND s.dataset_id = ?`
      : `samples s CROSS JOIN ${table} o ON o.${col} = s.${col} AND s.dataset_id = ?`;
  const rows = index
    .stmt(
      `SELECT s.key, s.shard, 0 AS by_image FROM ${joinFrom('optout_urls', 'url_hash')} WHERE s.status IN ('ok', 'fallback')
       UNION ALL
       SELECT s.key, s.shard, 1 FROM ${joinFrom('optout_images', 'sha256')} WHERE s.status IN ('ok', 'fallback')
       ORDER BY 3, 1`,
    )
    .all(datasetId, datasetId) as Array<{ key: string; shard: number; by_image: number }>;
  return rows.map((r) => ({ key: r.key, shard: r.shard, byImage: r.by_image === 1 }));
}
