/**
 * Removes samples from a finished shard (opt-out, dedup): the tar loses their members, the manifest keeps their
 * rows with the new status and reason, the stats are recomputed, and every token cache file of the shard
 * (`tokens/<id>/{i}.arrow`, `text/<id>/{i}.arrow`) loses their rows. Nothing else changes: other tar members are
 * copied byte for byte, other manifest rows and cache rows keep their values.
 *
 * Crash safety. Each file is replaced atomically (tmp + fsync + rename), so a reader sees the old or the new
 * file, never a partial one. Across files:
 * 1. the set of keys to remove is first written to a journal `shards/{i}.rewrite.json` (merged with any journal
 *    left by an interrupted run);
 * 2. then caches, tar, manifest, stats are rewritten in that order: data before the records that describe it;
 * 3. the journal is deleted last.
 * Each step is an idempotent function of the file's current content and the key set, so a rerun after a kill
 * anywhere (before, between or inside the renames) redoes the unfinished steps and leaves the finished ones
 * unchanged. The journal keeps the key set of an interrupted run even if the caller's set changed meanwhile (an
 * opt-out withdrawn); `pendingRewrites` lists such shards so that `apply` and `dedup` finish them first.
 * Without a journal, a shard whose manifest already shows every key removed is done and nothing is written.
 * One rewriter per dataset at a time: callers hold the dataset's lock (lock.ts).
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { TMP_SUFFIX, fsyncDir, writeFileAtomic } from '../util/atomic.ts';
import { CACHE_DIR, refreshCacheManifests } from './cache-format.ts';
import { dropArrowRows } from './arrow-filter.ts';
import { readManifest, writeManifest } from './manifest.ts';
import { writeRun } from '../index-db/sample-runs.ts';
import { shardName, shardPaths, shardsDir } from './names.ts';
import { readStats, summarize, writeStats, type ShardStats } from './stats.ts';
import { filterTar } from '../shards/tar-filter.ts';

export interface Removal {
  status: 'opted_out' | 'duplicate';
  reason: string;
  error?: string;
}

export interface RewriteResult {
  /** Samples taken out of the shard by this call (0 when they were already gone). */
  removed: number;
  cacheFilesRewritten: number;
  /** Set when the shard was not touched, with why (no stats file: the shard is incomplete). */
  skipped?: string;
}

export interface RewriteOptions {
  log?: (msg: string) => void;
  /** Test hook: called after each step ('journal', 'caches', 'tar', 'manifest', 'stats'). */
  afterStep?: (step: string) => void | Promise<void>;
}

/** Cache folders holding one Arrow file per shard, keyed by sample key (cache-format.ts names them). */
export const CACHE_DIRS = Object.values(CACHE_DIR);

export function journalPath(datasetDir: string, shard: number): string {
  return path.join(shardsDir(datasetDir), `${shardName(shard)}.rewrite.json`);
}

/** Shards with an unfinished rewrite (a journal left by a killed run). */
export async function pendingRewrites(datasetDir: string): Promise<number[]> {
  const dir = shardsDir(datasetDir);
  if (!existsSync(dir)) return [];
  const out: number[] = [];
  for (const f of await readdir(dir)) {
    const m = /^(\d+)\.rewrite\.json$/.exec(f);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

/** Token and text cache files of a shard: `<dataset>/{tokens,text}/<id>/{i:05d}.arrow`. */
export async function cacheFiles(datasetDir: string, shard: number): Promise<string[]> {
  const files: string[] = [];
  for (const dir of CACHE_DIRS) {
    const root = path.join(datasetDir, dir);
    if (!existsSync(root)) continue;
    for (const ent of (await readdir(root, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const f = path.join(root, ent.name, `${shardName(shard)}.arrow`);
      if (ent.isDirectory() && existsSync(f)) files.push(f);
    }
  }
  return files;
}

export type Journal = { shard: number; remove: Record<string, Removal> };

/** The journal of an unfinished rewrite, or null. */
export async function readJournal(file: string): Promise<Journal | null> {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Journal;
  } catch (err) {
    // Written atomically, so this is damage from outside; say so rather than guess.
    throw new Error(`${file}: unreadable rewrite journal (${(err as Error).message}); fix or delete it and rerun`);
  }
}

const IN_TAR = new Set(['ok', 'fallback']);

export async function rewriteShard(
  datasetDir: string,
  shard: number,
  remove: ReadonlyMap<string, Removal>,
  opts: RewriteOptions = {},
): Promise<RewriteResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const step = async (name: string) => opts.afterStep?.(name);
  const paths = shardPaths(datasetDir, shard);
  const stats = await readStats(paths.stats);
  if (!stats) {
    const why = `shard ${shardName(shard)} of ${datasetDir} is incomplete (no ${path.basename(paths.stats)}); skipped, fetch it first`;
    log(why);
    return { removed: 0, cacheFilesRewritten: 0, skipped: why };
  }

  const jfile = journalPath(datasetDir, shard);
  const journal = await readJournal(jfile);
  // Keys of an interrupted run keep the removal they were started with (their rows may already carry it).
  const all = new Map<string, Removal>(Object.entries(journal?.remove ?? {}));
  for (const [k, r] of remove) if (!all.has(k)) all.set(k, r);

  const rows = await readManifest(paths.manifest);
  const todo = rows.filter((r) => IN_TAR.has(r.status) && all.has(r.key));
  if (!journal && todo.length === 0) return { removed: 0, cacheFilesRewritten: 0 };

  if (!journal || all.size !== Object.keys(journal.remove).length) {
    await writeFileAtomic(jfile, JSON.stringify({ shard, remove: Object.fromEntries(all) } satisfies Journal) + '\n');
  }
  await step('journal');

  const keys = new Set(all.keys());
  let cacheFilesRewritten = 0;
  for (const f of await cacheFiles(datasetDir, shard)) if ((await dropArrowRows(f, keys)) > 0) cacheFilesRewritten++;
  // Their manifest.json entries (rows, sha256) follow; redone on a rerun while the journal exists.
  await refreshCacheManifests(datasetDir, shard);
  await step('caches');

  const tar = await filterTar(paths.tar, keys);
  await step('tar');

  const removed = new Set(tar.removedKeys);
  if (todo.length) {
    for (const r of todo) {
      const rm = all.get(r.key)!;
      r.status = rm.status;
      r.reason = rm.reason;
      r.error = rm.error ?? null;
      removed.add(r.key);
    }
    await writeManifest(paths.manifest, rows);
  }
  await step('manifest');
  // The shard's index run follows its manifest (new statuses); it then wins over this shard's compacted rows.
  await writeRun(paths.indexRun, rows, shard);

  const next: ShardStats = { ...stats, ...summarize(rows), bytes_written: tar.keptFileBytes };
  if (JSON.stringify(next) !== JSON.stringify(stats)) await writeStats(paths.stats, next);
  await step('stats');

  await rm(jfile, { force: true });
  await fsyncDir(path.dirname(jfile));
  // A kill inside a write leaves `<file>.tmp` behind; a rerun that had nothing left to write would keep it.
  for (const f of [
    paths.tar,
    paths.manifest,
    paths.indexRun,
    paths.stats,
    jfile,
    ...(await cacheFiles(datasetDir, shard)),
  ])
    await rm(f + TMP_SUFFIX, { force: true });
  return { removed: removed.size, cacheFilesRewritten };
}
