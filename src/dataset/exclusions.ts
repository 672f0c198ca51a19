/**
 * Samples still in a dataset's shards that no training stage may read: duplicates decided by `dedup` but not
 * removed (`<dataset>/dedup.arrow`) and opt-outs in the index at the data root not applied yet. Applied ones
 * already carry status `duplicate` / `opted_out` in the manifest.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { indexPath, openIndex } from '../index-db/db.ts';
import { withSampleIndex } from './sample-index.ts';
import { loadDuplicateKeys } from './decisions-file.ts';

/**
 * Keys of `datasetDir` opted out in the index at `dataRoot` but still in their tars (`apply` not run yet).
 * Empty when there is no index or the dataset is not in it.
 */
export async function pendingOptoutKeys(dataRoot: string, datasetDir: string): Promise<Set<string>> {
  if (!existsSync(indexPath(dataRoot))) return new Set();
  const index = openIndex(dataRoot, { readonly: true });
  try {
    const abs = path.resolve(datasetDir);
    const keys = new Set<string>();
    for (const d of index.datasets().filter((x) => x.path === abs)) {
      for (const m of await withSampleIndex(index, (s) => s.optedOutSamples(d.id))) keys.add(m.key);
    }
    return keys;
  } finally {
    index.close();
  }
}

/** Duplicates listed in `<dataset>/dedup.arrow` + opted-out samples not yet applied (index at `dataRoot`). */
export async function loadExclusions(datasetDir: string, dataRoot?: string): Promise<Set<string>> {
  const keys = await loadDuplicateKeys(datasetDir);
  if (dataRoot) for (const k of await pendingOptoutKeys(dataRoot, datasetDir)) keys.add(k);
  return keys;
}
