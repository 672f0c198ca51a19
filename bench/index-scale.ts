/**
 * The sample index at scale (synthetic LAION-like samples, this machine): shard runs written by one process as
 * fetch writes them (10,000 rows per shard: URL normalisation + hash, sort, Parquet), the rate measured per
 * segment as the index grows; then `index compact` of everything, point look-ups by URL hash and by sha256
 * (cold: a fresh DuckDB with no cached Parquet footers, the OS page cache not dropped; warm: repeated), the
 * `optout apply` planning join of K opted-out URLs, and disk bytes per sample.
 * Sizes default to 0.5M / 1M / 2M rows (`--quick`: 100k / 200k); the 10M / 50M / 200M do not fit the
 * shared 2-core machine's time budget: pass `--sizes 10000000,50000000` where there is room.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { runsByUrlHash, runsBySha256, runsOptedOut, writeCompacted, writeRun, type RunSet } from '../src/index-db/sample-runs.ts';
import { urlHashLoose } from '../src/optout/normalize-url.ts';
import { syntheticUrl } from './index-optout.ts';
import { shardRows } from './index-engines.ts';
import { markdownTable, round } from './lib.ts';

const SHARD = 10_000;

async function du(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  return total;
}

function pct(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return { p50_ms: round(s[Math.floor(s.length / 2)], 3), p99_ms: round(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))], 3) };
}

async function freshConnection(): Promise<DuckDBConnection> {
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  await con.run('LOAD parquet; SET parquet_metadata_cache = true');
  return con;
}

export async function benchIndexScale(opts: { quick?: boolean; sizes?: number[]; log?: (m: string) => void } = {}): Promise<object> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`[bench index-scale] ${m}\n`));
  const sizes = opts.sizes ?? (opts.quick ? [100_000, 200_000] : [500_000, 1_000_000, 2_000_000]);
  const optoutK = opts.quick ? 100_000 : 1_000_000;
  const lookups = opts.quick ? 200 : 1000;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-index-scale-'));
  const seed = randomBytes(32 * 65_536);
  try {
    const files: string[] = [];
    const segments: Array<{ rows_total: number; record_rows_per_s: number; cpu_ms_per_shard: number }> = [];
    let shard = 0;
    for (const size of sizes) {
      // Only writeRun is timed (the synthetic rows are made before each shard's timer starts).
      let s = 0;
      let cpu = 0;
      const first = shard;
      while (shard * SHARD < size) {
        const f = path.join(dir, 'shards', `${String(shard).padStart(5, '0')}.index.parquet`);
        const rows = shardRows(shard, seed);
        const t = performance.now();
        const c = process.cpuUsage();
        await writeRun(f, rows, shard);
        const cu = process.cpuUsage(c);
        s += (performance.now() - t) / 1000;
        cpu += (cu.user + cu.system) / 1000;
        files.push(f);
        shard++;
      }
      segments.push({ rows_total: shard * SHARD, record_rows_per_s: Math.round(((shard - first) * SHARD) / s), cpu_ms_per_shard: round(cpu / (shard - first), 1) });
      log(`${shard * SHARD} rows: ${segments.at(-1)!.record_rows_per_s} rows/s recording`);
    }
    const N = shard * SHARD;
    const shardBytes = await du(path.join(dir, 'shards'));
    let con = await freshConnection();
    let t = performance.now();
    const uncompacted: RunSet = { shardRuns: [{ datasetId: 1, files }], compacted: [], stale: [] };
    const byUrl = path.join(dir, 'index', 'c-1.url.parquet');
    const bySha = path.join(dir, 'index', 'c-1.sha.parquet');
    await writeCompacted(con, uncompacted, byUrl, bySha);
    const compactS = (performance.now() - t) / 1000;
    const compactBytes = await du(path.join(dir, 'index'));
    const urlBytes = (await stat(byUrl)).size;
    const set: RunSet = { shardRuns: [], compacted: [{ byUrl, bySha }], stale: [] };
    con.closeSync();

    const probe = (i: number) => shardRows((i * 7919) % shard, seed)[(i * 13) % SHARD];
    const probes = Array.from({ length: lookups }, (_, i) => probe(i));
    const time = async (n: number, fn: (i: number) => Promise<unknown>) => {
      const xs: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await fn(i);
        xs.push(performance.now() - t0);
      }
      return pct(xs);
    };
    // Cold: a new DuckDB per look-up (footers read again), different rows each time.
    const coldN = Math.min(lookups, 100);
    const cold = await time(coldN, async (i) => {
      const c = await freshConnection();
      try {
        const r = await runsByUrlHash(c, set, urlHashLoose(probes[i].url));
        if (!r.length) throw new Error('look-up found nothing');
      } finally {
        c.closeSync();
      }
    });
    con = await freshConnection();
    for (let i = 0; i < 20; i++) await runsByUrlHash(con, set, urlHashLoose(probes[i].url));
    const warmUrl = await time(lookups, (i) => runsByUrlHash(con, set, urlHashLoose(probes[i % 50].url)));
    const warmSha = await time(lookups, (i) => runsBySha256(con, set, Buffer.from(probes[i % 50].sha256 ?? probes[0].sha256!, 'hex')));
    const uncompactedUrl = await time(Math.min(lookups, 50), (i) => runsByUrlHash(con, uncompacted, urlHashLoose(probes[i].url)));
    // Planning: K opted-out URLs, half of them in the index.
    const hashes = Array.from({ length: optoutK }, (_, i) => urlHashLoose(syntheticUrl(i % 2 ? (i * 104729) % N : N + i)));
    t = performance.now();
    const planned = await runsOptedOut(con, set, 1, () => hashes, () => []);
    const planS = (performance.now() - t) / 1000;
    con.closeSync();
    const perSample = (b: number) => round(b / N, 1);
    const results = {
      rows: N,
      segments,
      compact_s: round(compactS),
      lookup_url_cold: cold,
      lookup_url_warm: warmUrl,
      lookup_sha_warm: warmSha,
      lookup_url_uncompacted_warm: uncompactedUrl,
      optout_plan_s: round(planS),
      optout_plan_matches: planned.length,
      bytes_per_sample_shard_runs: perSample(shardBytes),
      bytes_per_sample_compacted_url: perSample(urlBytes),
      bytes_per_sample_compacted_both: perSample(compactBytes),
    };
    const table = [
      markdownTable(['rows in the index', 'record rows/s (one process)', 'CPU ms per 10k-row shard'], segments.map((s) => [s.rows_total, s.record_rows_per_s, s.cpu_ms_per_shard])),
      '',
      markdownTable(
        ['at rows', 'compact s', 'URL look-up cold p50/p99 ms', 'URL warm p50/p99 ms', 'sha256 warm p50/p99 ms', `plan ${optoutK} opt-out URLs s`, 'bytes/sample: shard runs / compacted by URL / both orders'],
        [[N, results.compact_s, `${cold.p50_ms} / ${cold.p99_ms}`, `${warmUrl.p50_ms} / ${warmUrl.p99_ms}`, `${warmSha.p50_ms} / ${warmSha.p99_ms}`, `${results.optout_plan_s} (${planned.length} matches)`, `${results.bytes_per_sample_shard_runs} / ${results.bytes_per_sample_compacted_url} / ${results.bytes_per_sample_compacted_both}`]],
      ),
    ].join('\n');
    log(`\n${table}`);
    return { config: { sizes, shard_rows: SHARD, lookups, optout_urls: optoutK }, ...results, table };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
