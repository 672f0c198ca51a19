/** Which samples of a shard go into its caches: `ok` (and `fallback` if asked), minus dedup and opt-out decisions. */
import { readdir } from 'node:fs/promises';
import { loadDuplicateKeys } from './decisions-file.ts';
import { pendingOptoutKeys } from '../optout/apply.ts';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readManifest } from './manifest.ts';
import { shardPaths } from './names.ts';

export interface SelectOptions {
  includeFallbacks: boolean;
  /** Keys decided but not yet removed from the tars: see `loadExclusions`. */
  exclude: ReadonlySet<string>;
}

/** Duplicates listed in `<dataset>/dedup.arrow` + opted-out samples not yet applied (index at `dataRoot`). */
export async function loadExclusions(datasetDir: string, dataRoot?: string): Promise<Set<string>> {
  const keys = await loadDuplicateKeys(datasetDir);
  if (dataRoot) for (const k of pendingOptoutKeys(dataRoot, datasetDir)) keys.add(k);
  return keys;
}

/** Keys to cache, in shard key order, with their manifest captions. */
export async function selectSamples(datasetDir: string, shard: number, opts: SelectOptions): Promise<Array<{ key: string; caption: string }>> {
  const rows = await readManifest(shardPaths(datasetDir, shard).manifest);
  return rows
    .filter((r) => (r.status === 'ok' || (opts.includeFallbacks && r.status === 'fallback')) && !opts.exclude.has(r.key))
    .map((r) => ({ key: r.key, caption: r.caption ?? '' }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Shards whose stats file exists (complete), ascending, optionally within [from, to]. */
export async function completeShards(datasetDir: string, range?: [number, number]): Promise<number[]> {
  const dir = path.join(datasetDir, 'shards');
  if (!existsSync(dir)) return [];
  const out: number[] = [];
  for (const f of await readdir(dir)) {
    const m = /^(\d+)_stats\.json$/.exec(f);
    if (!m) continue;
    const i = Number(m[1]);
    if (!range || (i >= range[0] && i <= range[1])) out.push(i);
  }
  return out.sort((a, b) => a - b);
}

/** `--shards A-B` or `A`. */
export function parseShardRange(s: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`--shards: expected A or A-B, got '${s}'`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (b < a) throw new Error(`--shards: ${a}-${b} is empty`);
  return [a, b];
}
