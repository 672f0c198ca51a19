/**
 * The sample index of a data root: every registered dataset's shard runs (`shards/{i}.index.parquet`, written
 * by whoever made the shard) plus the compacted runs under `<data root>/index/` listed in `runs.json`, queried
 * together through DuckDB (src/index-db/sample-runs.ts). Shards that have neither (fetched before runs existed)
 * still answer from the old `samples` table of index.sqlite until `muse-data index compact` moves them.
 *
 * `runs.json` (replaced atomically) lists the live compacted runs and, per dataset folder, the shard runs they
 * absorbed with each file's sha256. A shard run that is still there with the same content is a leftover of
 * a compaction killed before it deleted it (ignored); with another stamp it is newer (an opt-out / dedup rewrite or a
 * refetch after the compaction): it wins over the compacted rows of that shard.
 */
import { existsSync } from 'node:fs';
import { hash } from 'node:crypto';
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { sha256Bytes, type DatasetRow, type IndexDb, type SampleRef } from '../index-db/db.ts';
import { optedOutSamples as legacyOptedOut, type OptoutMatch } from '../index-db/optout-matches.ts';
import { writeLegacyRows } from '../index-db/legacy-samples.ts';
import {
  connect,
  writeRun,
  runsNearPhash,
  runsOptedOut,
  writeCompacted,
  type RunHit,
  type RunSet,
} from '../index-db/sample-runs.ts';
import {
  RunChangedError,
  RunLookup,
  runRef,
  type KeyColumn,
  type RunRef,
  type RunRow,
} from '../index-db/run-lookup.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { INDEX_RUN_SUFFIX, indexRunsDir, shardName, shardOfStatsFile, shardPaths, shardsDir } from './names.ts';
import { completeShards } from './complete-shards.ts';
import { readManifest } from './manifest.ts';

export const RUNS_MANIFEST = 'runs.json';

export interface LiveRuns {
  /** Bumped by each compaction; names its files. */
  generation: number;
  runs: Array<{ byUrl: string; bySha: string; rows: number }>;
  /** Dataset folder -> shard -> sha256 of the shard run absorbed (`legacy`: moved from the old samples table). */
  covered: Record<string, Record<string, string>>;
}

export function runsManifestPath(dataRoot: string): string {
  return path.join(indexRunsDir(dataRoot), RUNS_MANIFEST);
}

export async function readLiveRuns(dataRoot: string): Promise<LiveRuns> {
  const file = runsManifestPath(dataRoot);
  if (!existsSync(file)) return { generation: 0, runs: [], covered: {} };
  try {
    const j = JSON.parse(await readFile(file, 'utf8')) as LiveRuns;
    if (!Number.isInteger(j.generation) || !Array.isArray(j.runs) || typeof j.covered !== 'object')
      throw new Error('missing generation, runs or covered');
    return j;
  } catch (err) {
    throw new Error(`${file}: unreadable manifest of the sample index runs (${(err as Error).message})`);
  }
}

const stampOf = async (file: string) => hash('sha256', await readFile(file), 'hex');

/** Where every live index row is, for a set of datasets. */
export interface IndexLayout {
  live: LiveRuns;
  set: RunSet;
  /** `${datasetId}:${shard}` of every shard present in the runs (shard runs and compacted). */
  inRuns: Set<string>;
  /** Shard runs absorbed but not deleted yet (a compaction killed after its swap). */
  leftovers: string[];
  /** Per dataset id: its live shard runs by shard. */
  shardRunFiles: Map<number, Map<number, string>>;
}

/** The files a point look-up reads, by key column: the compacted copy sorted by it, and every live shard run. */
export interface LookupRuns {
  url_hash: RunRef[];
  sha_hi: RunRef[];
  /** `${datasetId}:${shard}` whose compacted rows are stale (a newer shard run answers for them). */
  stale: Set<string>;
}

export async function lookupRuns(set: RunSet): Promise<LookupRuns> {
  const shardRuns = await Promise.all(set.shardRuns.flatMap((d) => d.files.map((f) => runRef(f, d.datasetId))));
  const byUrl = await Promise.all(set.compacted.map((c) => runRef(c.byUrl)));
  const bySha = await Promise.all(set.compacted.map((c) => runRef(c.bySha)));
  return {
    url_hash: [...byUrl, ...shardRuns],
    sha_hi: [...bySha, ...shardRuns],
    stale: new Set(set.stale.map((s) => `${s.datasetId}:${s.shard}`)),
  };
}

/** One look-up cache per process, shared by every SampleIndex opened in it (the server reopens its index). */
let processLookup: RunLookup | undefined;

export async function indexLayout(dataRoot: string, datasets: readonly DatasetRow[]): Promise<IndexLayout> {
  const live = await readLiveRuns(dataRoot);
  const dir = indexRunsDir(dataRoot);
  const set: RunSet = {
    shardRuns: [],
    compacted: live.runs.map((r) => ({ byUrl: path.join(dir, r.byUrl), bySha: path.join(dir, r.bySha) })),
    stale: [],
  };
  const inRuns = new Set<string>();
  const leftovers: string[] = [];
  const shardRunFiles = new Map<number, Map<number, string>>();
  for (const d of datasets) {
    const covered = live.covered[d.path] ?? {};
    for (const s of Object.keys(covered)) inRuns.add(`${d.id}:${s}`);
    let names: string[];
    try {
      names = await readdir(shardsDir(d.path));
    } catch {
      continue; // folder gone: its compacted rows still answer
    }
    const complete = new Set(names.map(shardOfStatsFile).filter((i): i is number => i !== null));
    const files: string[] = [];
    const byShard = new Map<number, string>();
    for (const n of names) {
      if (!n.endsWith(INDEX_RUN_SUFFIX)) continue;
      const shard = Number(n.slice(0, -INDEX_RUN_SUFFIX.length));
      if (!Number.isInteger(shard) || !complete.has(shard)) continue;
      const file = path.join(shardsDir(d.path), n);
      const was = covered[String(shard)];
      if (was !== undefined) {
        // Absorbed by a compaction: the same file is a leftover, another one is newer than the compacted rows.
        if (was === (await stampOf(file))) {
          leftovers.push(file);
          continue;
        }
        set.stale.push({ datasetId: d.id, shard });
      }
      files.push(file);
      byShard.set(shard, file);
      inRuns.add(`${d.id}:${shard}`);
    }
    if (files.length) set.shardRuns.push({ datasetId: d.id, files: files.sort() });
    shardRunFiles.set(d.id, byShard);
  }
  return { live, set, inRuns, leftovers, shardRunFiles };
}

/**
 * Shard runs not yet compacted beyond which fetch and serve suggest `muse-data index compact`: a point look-up
 * searches every shard run (their hash ranges overlap) but only the row groups of a compacted run that can
 * hold the key.
 */
export const COMPACT_SUGGEST_RUNS = 64;

/** A one-line suggestion to compact when more than `threshold` shard runs are live, else null. */
export async function compactionAdvice(index: IndexDb, threshold = COMPACT_SUGGEST_RUNS): Promise<string | null> {
  const { set } = await indexLayout(path.dirname(index.file), index.datasets());
  const n = set.shardRuns.reduce((k, d) => k + d.files.length, 0);
  if (n <= threshold) return null;
  return `the sample index has ${n} shard runs not compacted yet (each look-up searches every one): run \`muse-data index compact\` to merge them into one sorted run`;
}

/** Look-ups over the runs of every registered dataset, with the old samples table for shards not moved yet. */
export class SampleIndex {
  /** DuckDB, started on the first batch query (point look-ups do not need it). */
  private con?: Promise<DuckDBConnection>;
  private readonly lookup = (processLookup ??= new RunLookup());

  private constructor(
    readonly index: IndexDb,
    public layout: IndexLayout,
    private runs: LookupRuns,
    private readonly datasets: Map<number, DatasetRow>,
  ) {}

  static async open(index: IndexDb): Promise<SampleIndex> {
    const datasets = index.datasets();
    const layout = await indexLayout(path.dirname(index.file), datasets);
    return new SampleIndex(index, layout, await lookupRuns(layout.set), new Map(datasets.map((d) => [d.id, d])));
  }

  private duck(): Promise<DuckDBConnection> {
    return (this.con ??= connect());
  }

  /**
   * Rows of the live runs whose key column equals `key`. A run rewritten or compacted away since the index was
   * opened makes the layout be read again, once.
   */
  private async find(column: KeyColumn, key: Buffer, wanted: (r: RunRow) => boolean = () => true): Promise<RunHit[]> {
    const k = key.readBigUInt64BE(0);
    // Stale applies to compacted rows only (runs with a dataset_id column): the newer shard run answers instead.
    const live = (r: RunRow, ref: RunRef) =>
      (ref.datasetId !== undefined || !this.runs.stale.has(`${r.datasetId}:${r.shard}`)) && wanted(r);
    let rows: RunRow[];
    try {
      rows = await this.lookup.find(this.runs[column], column, k, live);
    } catch (err) {
      if (!(err instanceof RunChangedError)) throw err;
      this.layout = await indexLayout(path.dirname(this.index.file), [...this.datasets.values()]);
      this.runs = await lookupRuns(this.layout.set);
      rows = await this.lookup.find(this.runs[column], column, k, live);
    }
    return rows.map((r) => ({
      datasetId: r.datasetId,
      key: r.key,
      shard: r.shard,
      status: r.status,
      sha256: r.sha256 ? r.sha256.toString('hex') : null,
      phash: r.phash == null ? null : r.phash.toString(16).padStart(16, '0'),
    }));
  }

  private refs(hits: RunHit[], legacy: SampleRef[]): SampleRef[] {
    const out: SampleRef[] = [];
    for (const h of hits) {
      const d = this.datasets.get(h.datasetId);
      if (d) out.push({ ...h, dataset: d.name, datasetPath: d.path });
    }
    for (const r of legacy) if (!this.layout.inRuns.has(`${r.datasetId}:${r.shard}`)) out.push(r);
    return out.sort((a, b) => a.datasetId - b.datasetId || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Samples fetched from the URL with this hash (`urlHash` of src/optout/normalize-url.ts), any dataset. */
  async samplesByUrlHash(hash: Buffer): Promise<SampleRef[]> {
    return this.refs(await this.find('url_hash', hash), this.index.samplesByUrlHash(hash));
  }

  /** Samples whose downloaded image has this sha256 (hex), any dataset. */
  async samplesBySha256(hex: string): Promise<SampleRef[]> {
    const b = sha256Bytes(hex.trim());
    return this.refs(
      await this.find('sha_hi', b, (r) => r.sha256 !== null && r.sha256.equals(b)),
      this.index.samplesBySha256(hex.trim()),
    );
  }

  /** Samples of a dataset whose dHash is within `distance` bits (runs only; a scan of the phash column). */
  async nearPhash(
    datasetId: number,
    phash: string,
    distance: number,
  ): Promise<Array<SampleRef & { distance: number }>> {
    const d = this.datasets.get(datasetId);
    if (!d) return [];
    const hits = await runsNearPhash(await this.duck(), this.layout.set, datasetId, BigInt('0x' + phash), distance);
    return hits.map((h) => ({ ...h, dataset: d.name, datasetPath: d.path }));
  }

  /**
   * Samples of a dataset still in their tar whose URL or image is opted out (URL matches first), as one batch
   * join of the opt-out lists against the runs; shards not moved yet answer from the old samples table.
   */
  async optedOutSamples(datasetId: number): Promise<OptoutMatch[]> {
    const urls = () => this.index.stmt('SELECT url_hash FROM optout_urls').pluck().iterate() as Iterable<Buffer>;
    const images = () => this.index.stmt('SELECT sha256 FROM optout_images').pluck().iterate() as Iterable<Buffer>;
    const fromRuns = await runsOptedOut(await this.duck(), this.layout.set, datasetId, urls, images);
    const legacy = legacyOptedOut(this.index, datasetId).filter(
      (m) => !this.layout.inRuns.has(`${datasetId}:${m.shard}`),
    );
    const all = [...fromRuns.map(({ key, shard, byImage }) => ({ key, shard, byImage })), ...legacy];
    return all.sort((a, b) => Number(a.byImage) - Number(b.byImage) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  close(): void {
    this.con?.then(
      (c) => c.closeSync(),
      () => {},
    );
  }
}

/**
 * A SampleIndex for a long-running process (the server): reopened when older than `maxAgeMs`, so shards
 * finished and compactions done meanwhile are seen. The previous one is closed once replaced.
 */
export function sampleIndexCache(index: IndexDb, maxAgeMs = 5_000): () => Promise<SampleIndex> {
  let current: { at: number; s: Promise<SampleIndex> } | undefined;
  return async () => {
    if (!current || Date.now() - current.at > maxAgeMs) {
      const old = current;
      current = { at: Date.now(), s: SampleIndex.open(index) };
      old?.s.then(
        (s) => s.close(),
        () => {},
      );
    }
    return current.s;
  };
}

/** Opens a SampleIndex over `index`, runs `fn`, closes it. */
export async function withSampleIndex<T>(index: IndexDb, fn: (s: SampleIndex) => Promise<T>): Promise<T> {
  const s = await SampleIndex.open(index);
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

export interface CompactResult {
  runsMerged: number;
  shardRunsMerged: number;
  legacyShardsMoved: number;
  rows: number;
  deleted: number;
}

/**
 * `muse-data index compact`: merges every live run (shard runs, compacted runs, and the old samples table's rows
 * of shards that have no run: the migration) into one new sorted run pair. Crash-safe: the new files are written
 * atomically, then `runs.json` is swapped (the commit point), then the absorbed files are deleted. Killed before
 * the swap, the old runs stay live (the new files are unreferenced and removed by the next compaction); killed
 * after it, the leftovers are recognised by their stamps and deleted by the next compaction.
 */
export type CompactStep = 'written' | 'swapped' | 'deleted';

export async function compactIndex(
  index: IndexDb,
  log: (m: string) => void = () => {},
  onStep?: (step: CompactStep) => void,
): Promise<CompactResult> {
  const dataRoot = path.dirname(index.file);
  const datasets = index.datasets();
  const rebuilt = await runsFromManifests(index, await indexLayout(dataRoot, datasets));
  if (rebuilt)
    log(`${rebuilt} complete shard(s) had no index run and no old samples rows: runs written from their manifests`);
  const layout = await indexLayout(dataRoot, datasets);
  const dir = indexRunsDir(dataRoot);
  const con = await connect();
  try {
    // Migration: old samples rows of shards with no run go into a temporary run of their own.
    const legacyFile = path.join(dir, `legacy-${layout.live.generation + 1}.parquet`);
    const legacyShards = await writeLegacyRun(con, index, layout, legacyFile);
    const set: RunSet = { ...layout.set, shardRuns: [...layout.set.shardRuns] };
    if (legacyShards.size) set.compacted = [...set.compacted, { byUrl: legacyFile, bySha: legacyFile }];
    const shardRunsMerged = layout.set.shardRuns.reduce((n, d) => n + d.files.length, 0);
    if (!shardRunsMerged && !legacyShards.size && layout.live.runs.length <= 1) {
      await rm(legacyFile, { force: true });
      const deleted = await cleanUp(dir, layout.live, layout.leftovers);
      return {
        runsMerged: 0,
        shardRunsMerged: 0,
        legacyShardsMoved: 0,
        rows: layout.live.runs.reduce((n, r) => n + r.rows, 0),
        deleted,
      };
    }
    const gen = layout.live.generation + 1;
    const byUrl = `c-${gen}.url.parquet`;
    const bySha = `c-${gen}.sha.parquet`;
    log(
      `merging ${shardRunsMerged} shard run(s), ${layout.live.runs.length} compacted run(s) and ${[...legacyShards.values()].reduce((n, s) => n + s.size, 0)} old shard(s) into ${byUrl}`,
    );
    const rows = await writeCompacted(con, set, path.join(dir, byUrl), path.join(dir, bySha));
    onStep?.('written');
    // The commit point: the new manifest names the new run and every shard run it absorbed.
    const covered: LiveRuns['covered'] = {};
    for (const d of datasets) {
      const c: Record<string, string> = {};
      const files = layout.shardRunFiles.get(d.id);
      for (const [s, stamp] of Object.entries(layout.live.covered[d.path] ?? {}))
        if (!files?.has(Number(s))) c[s] = stamp;
      for (const [s, file] of files ?? []) c[String(s)] = await stampOf(file);
      for (const s of legacyShards.get(d.id) ?? []) c[String(s)] = 'legacy';
      if (Object.keys(c).length) covered[d.path] = c;
    }
    const next: LiveRuns = { generation: gen, runs: [{ byUrl, bySha, rows }], covered };
    await writeFileAtomic(runsManifestPath(dataRoot), JSON.stringify(next, null, 1) + '\n');
    onStep?.('swapped');
    // Only a shard run still equal to what was merged goes (one rewritten meanwhile is newer: it stays live).
    const absorbed: string[] = [];
    for (const d of datasets) {
      for (const [s, file] of layout.shardRunFiles.get(d.id) ?? [])
        if (existsSync(file) && (await stampOf(file)) === covered[d.path]?.[String(s)]) absorbed.push(file);
    }
    const deleted = await cleanUp(dir, next, [...absorbed, ...layout.leftovers]);
    await rm(legacyFile, { force: true });
    onStep?.('deleted');
    return {
      runsMerged: layout.live.runs.length,
      shardRunsMerged,
      legacyShardsMoved: [...legacyShards.values()].reduce((n, s) => n + s.size, 0),
      rows,
      deleted,
    };
  } finally {
    con.closeSync();
  }
}

/**
 * Complete shards that are in no run and not in the old samples table (e.g. finished by queue workers of an older
 * muse, whose parent recorded them later or never): their run is written from the manifest, as fetch would have.
 */
async function runsFromManifests(index: IndexDb, layout: IndexLayout): Promise<number> {
  const hasOld = index.stmt('SELECT 1 FROM samples WHERE dataset_id = ? AND key >= ? AND key < ? LIMIT 1').pluck();
  let n = 0;
  for (const d of index.datasets()) {
    if (!existsSync(d.path)) continue;
    for (const shard of await completeShards(d.path)) {
      if (layout.inRuns.has(`${d.id}:${shard}`)) continue;
      // Keys start with the 5-digit shard name; ':' sorts right after '9'.
      if (hasOld.get(d.id, shardName(shard), shardName(shard) + ':') !== undefined) continue;
      const paths = shardPaths(d.path, shard);
      await writeRun(paths.indexRun, await readManifest(paths.manifest), shard);
      n++;
    }
  }
  return n;
}

/** Deletes absorbed shard runs and every file under the runs folder that `live` does not name. */
async function cleanUp(dir: string, live: LiveRuns, absorbed: string[]): Promise<number> {
  let n = 0;
  for (const f of absorbed) {
    await rm(f, { force: true });
    n++;
  }
  const keep = new Set([RUNS_MANIFEST, ...live.runs.flatMap((r) => [r.byUrl, r.bySha])]);
  for (const name of existsSync(dir) ? await readdir(dir) : []) {
    if (keep.has(name)) continue;
    await rm(path.join(dir, name), { force: true });
    n++;
  }
  return n;
}

/** Writes the old samples rows of shards not in any run to `file` (with dataset_id); returns dataset -> shards. */
async function writeLegacyRun(
  con: DuckDBConnection,
  index: IndexDb,
  layout: IndexLayout,
  file: string,
): Promise<Map<number, Set<number>>> {
  return writeLegacyRows(con, index, (datasetId, shard) => !layout.inRuns.has(`${datasetId}:${shard}`), file);
}
