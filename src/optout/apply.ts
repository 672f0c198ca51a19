/**
 * `optout apply`: removes opted-out samples from datasets already fetched. The index says which samples are
 * affected (URL or image sha256 opted out, sample still in its tar), so no shard is scanned; each affected shard
 * is rewritten once (src/dataset/rewrite.ts) and the samples' status in the index updated after it. Unfinished
 * rewrites left by a killed run are finished first.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { DatasetRow, IndexDb } from '../index-db/db.ts';
import { withSampleIndex } from '../dataset/sample-index.ts';
import { journalPath, pendingRewrites, readJournal, rewriteShard, type Removal } from '../dataset/rewrite.ts';
import { withDatasetLock } from '../dataset/lock.ts';
import { closestName } from '../util/suggest.ts';
import { optoutVersion } from './store.ts';

export const OPTOUT_URL: Removal = {
  status: 'opted_out',
  reason: 'optout_index',
  error: 'the URL is in the opt-out index',
};
export const OPTOUT_IMAGE: Removal = {
  status: 'opted_out',
  reason: 'optout_image',
  error: 'the image (sha256) is in the opt-out index',
};

export class ApplyError extends Error {}

export interface RemovedSample {
  dataset: string;
  key: string;
  shard: number;
  reason: string;
}

export interface DatasetApply {
  dataset: string;
  path: string;
  shardsRewritten: number;
  removed: number;
  cacheFilesRewritten: number;
  /** Shards left alone, with why (incomplete, folder missing). */
  skipped: string[];
}

/** Datasets named on the command line (by name or folder), or every registered one when none is named. */
export function resolveDatasets(index: IndexDb, args: readonly string[]): DatasetRow[] {
  const all = index.datasets();
  if (args.length === 0) return all;
  const out = new Map<number, DatasetRow>();
  for (const a of args) {
    const abs = path.resolve(a);
    const hits = all.filter((d) => d.path === abs || d.name === a);
    if (hits.length === 0) {
      const hint = closestName(
        a,
        all.map((d) => d.name),
      );
      const known = all.length
        ? `known: ${all.map((d) => d.name).join(', ')}`
        : 'the index knows no dataset yet (fetch registers them)';
      throw new ApplyError(`no dataset '${a}' in ${index.file}${hint ? ` (did you mean '${hint}'?)` : ''}; ${known}`);
    }
    for (const d of hits) out.set(d.id, d);
  }
  return [...out.values()];
}

/** The samples `apply` removes, by shard, URL reasons first: one batch join over the sample runs. */
async function affected(index: IndexDb, datasetId: number): Promise<Map<number, Map<string, Removal>>> {
  const byShard = new Map<number, Map<string, Removal>>();
  for (const r of await withSampleIndex(index, (s) => s.optedOutSamples(datasetId))) {
    let m = byShard.get(r.shard);
    if (!m) byShard.set(r.shard, (m = new Map()));
    if (!m.has(r.key)) m.set(r.key, r.byImage ? OPTOUT_IMAGE : OPTOUT_URL);
  }
  return byShard;
}

export interface ApplyOptions {
  /** One line per removed sample (`dataset key shard reason`) and per skipped shard. */
  log?: (line: string) => void;
  /** A line before each shard is rewritten. */
  progress?: (line: string) => void;
  onRemoved?: (s: RemovedSample) => void;
}

export async function applyOptouts(
  index: IndexDb,
  datasets: readonly DatasetRow[],
  opts: ApplyOptions = {},
): Promise<DatasetApply[]> {
  const log = opts.log ?? (() => {});
  const out: DatasetApply[] = [];
  // The list as of now: what this run applies (an opt-out added while it runs belongs to the next version).
  const version = optoutVersion(index);
  for (const d of datasets) {
    const res: DatasetApply = {
      dataset: d.name,
      path: d.path,
      shardsRewritten: 0,
      removed: 0,
      cacheFilesRewritten: 0,
      skipped: [],
    };
    out.push(res);
    if (!existsSync(d.path)) {
      res.skipped.push(`${d.path}: the dataset folder does not exist`);
      log(`${d.name}: ${d.path} does not exist; skipped`);
      continue;
    }
    // One rewriter per dataset at a time (src/dataset/lock.ts): a second apply or dedup --apply waits here.
    await withDatasetLock(
      d.path,
      'optout apply',
      async () => {
        const shards = await affected(index, d.id);
        for (const shard of await pendingRewrites(d.path)) if (!shards.has(shard)) shards.set(shard, new Map());
        for (const shard of [...shards.keys()].sort((a, b) => a - b)) {
          const remove = shards.get(shard)!;
          // Keys of an unfinished rewrite (maybe a dedup one) get their index status updated too.
          const journal = await readJournal(journalPath(d.path, shard));
          opts.progress?.(
            `${d.name}: shard ${shard}: ${remove.size} sample(s) to remove${journal ? ', finishing an interrupted rewrite' : ''}`,
          );
          const r = await rewriteShard(d.path, shard, remove, { log: (m) => log(m) });
          if (r.skipped) {
            res.skipped.push(r.skipped);
            continue;
          }
          // As in rewriteShard, a journal's removal wins over a new one for the same key.
          const all = new Map<string, Removal>([...remove, ...Object.entries(journal?.remove ?? {})]);
          const byStatus = new Map<string, string[]>();
          for (const [key, rm] of all) {
            const keys = byStatus.get(rm.status);
            if (keys) keys.push(key);
            else byStatus.set(rm.status, [key]);
          }
          for (const [status, keys] of byStatus) index.setSampleStatus(d.id, keys, status);
          for (const [key, rm] of remove) {
            const s: RemovedSample = { dataset: d.name, key, shard, reason: rm.reason };
            opts.onRemoved?.(s);
            log(`${s.dataset} ${s.key} ${s.shard} ${s.reason}`);
          }
          res.shardsRewritten += r.removed > 0 || r.cacheFilesRewritten > 0 ? 1 : 0;
          res.removed += r.removed;
          res.cacheFilesRewritten += r.cacheFilesRewritten;
        }
        if (res.skipped.length === 0) {
          index
            .stmt('INSERT INTO optout_applies(dataset_id, version, applied) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
            .run(d.id, version, new Date().toISOString());
        }
      },
      { onWait: opts.progress ?? ((m) => process.stderr.write(m + '\n')) },
    );
  }
  return out;
}

// What a consumer of the shards must skip before `apply` runs: src/dataset/exclusions.ts.
export { pendingOptoutKeys } from '../dataset/exclusions.ts';
