/**
 * `dedup --apply`: removes the pending duplicates from their shards with the shared rewrite mechanism (tar,
 * manifest row -> status `duplicate` with reason = kind, stats, token caches), then marks the decisions applied
 * and the samples `duplicate` in the index. Shards left half-rewritten by a killed run are finished first.
 * Idempotent: a rerun rewrites nothing that is already done.
 */
import type { IndexDb } from '../index-db/db.ts';
import { pendingRewrites, rewriteShard, type Removal } from '../dataset/rewrite.ts';

export interface ApplyResult {
  shards: number;
  removed: number;
  /** Shards not touched (incomplete), with why. */
  skipped: string[];
}

type Pending = {
  key: string;
  shard: number;
  of_key: string;
  of_dataset: string;
  same_dataset: number;
  kind: string;
  distance: number | null;
};

const HOW: Record<string, (d: number | null) => string> = {
  url: () => 'same URL',
  sha256: () => 'identical image bytes',
  pair: () => 'same image and caption',
  phash: (d) => `distance ${d}`,
};

export function removalFor(p: Omit<Pending, 'key' | 'shard'>): Removal {
  const of = p.same_dataset ? p.of_key : `${p.of_dataset}/${p.of_key}`;
  return { status: 'duplicate', reason: p.kind, error: `duplicate of ${of} (${HOW[p.kind]?.(p.distance) ?? p.kind})` };
}

export async function applyDecisions(
  index: IndexDb,
  datasetId: number,
  datasetDir: string,
  log: (m: string) => void,
): Promise<ApplyResult> {
  const pending = index.db
    .prepare(
      `SELECT x.key, s.shard, x.duplicate_of_key AS of_key, d.name AS of_dataset, x.duplicate_of_dataset = x.dataset_id AS same_dataset,
              x.kind, x.distance
       FROM dedup_decisions x JOIN samples s ON s.dataset_id = x.dataset_id AND s.key = x.key
       JOIN datasets d ON d.id = x.duplicate_of_dataset
       WHERE x.dataset_id = ? AND x.applied = 0 ORDER BY x.key`,
    )
    .all(datasetId) as Pending[];
  const byShard = new Map<number, Map<string, Removal>>();
  for (const shard of await pendingRewrites(datasetDir)) byShard.set(shard, new Map());
  for (const p of pending) {
    if (!byShard.has(p.shard)) byShard.set(p.shard, new Map());
    byShard.get(p.shard)!.set(p.key, removalFor(p));
  }

  const markApplied = index.db.prepare('UPDATE dedup_decisions SET applied = 1 WHERE dataset_id = ? AND key = ?');
  const forget = index.db.prepare('DELETE FROM dedup_phash_bands WHERE dataset_id = ? AND key = ?');
  const result: ApplyResult = { shards: 0, removed: 0, skipped: [] };
  for (const shard of [...byShard.keys()].sort((a, b) => a - b)) {
    const remove = byShard.get(shard)!;
    const res = await rewriteShard(datasetDir, shard, remove, { log });
    if (res.skipped) {
      result.skipped.push(res.skipped);
      continue;
    }
    result.shards++;
    result.removed += res.removed;
    const keys = [...remove.keys()];
    index.write(() => {
      for (const k of keys) {
        markApplied.run(datasetId, k);
        forget.run(datasetId, k);
      }
      index.setSampleStatus(datasetId, keys, 'duplicate');
    });
  }
  return result;
}
