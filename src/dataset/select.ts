/**
 * The usable-sample rule, the one answer to "may a training stage read this sample?" (tokenize caches exactly
 * these, the token-cache loader and the VQGAN stage read no other). A sample is usable iff
 *   1. its shard is complete (complete-shards.ts: its `_stats.json` exists);
 *   2. its manifest status is `ok`, or `fallback` when the stage is asked to include fallbacks (default: not; a
 *      fallback is the solid-colour placeholder of a dead link, not an image of its caption);
 *   3. it is not a duplicate listed in `dedup.arrow` (decided, not yet removed with --apply);
 *   4. it is not opted out in the index at the data root, applied or not (exclusions.ts).
 * Statuses `filtered`, `duplicate`, `opted_out`, `failed` are never usable.
 */
import { readManifest } from './manifest.ts';
import { shardPaths } from './names.ts';
import { loadExclusions } from './exclusions.ts';

export { loadExclusions } from './exclusions.ts';
export { completeShards } from './complete-shards.ts';

export interface SelectOptions {
  includeFallbacks: boolean;
  /** Keys decided but not yet removed from the tars: see `loadExclusions`. */
  exclude: ReadonlySet<string>;
}
/** The rule's parameters for one dataset. */
export type UsableRule = SelectOptions;

/** The rule for a dataset: its exclusions (dedup.arrow + pending opt-outs in the index at `dataRoot`). */
export async function usableRule(
  datasetDir: string,
  o: { dataRoot?: string; includeFallbacks?: boolean } = {},
): Promise<UsableRule & { exclude: Set<string> }> {
  return { includeFallbacks: o.includeFallbacks ?? false, exclude: await loadExclusions(datasetDir, o.dataRoot) };
}

/** Conditions 2-4 for one manifest row. */
export function isUsable(row: { key: string; status: string }, rule: UsableRule): boolean {
  return (row.status === 'ok' || (rule.includeFallbacks && row.status === 'fallback')) && !rule.exclude.has(row.key);
}

/** Usable samples of a (complete) shard, in key order, with their manifest captions. */
export async function selectSamples(
  datasetDir: string,
  shard: number,
  opts: SelectOptions,
): Promise<Array<{ key: string; caption: string }>> {
  const rows = await readManifest(shardPaths(datasetDir, shard).manifest);
  return rows
    .filter((r) => isUsable(r, opts))
    .map((r) => ({ key: r.key, caption: r.caption ?? '' }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
