/**
 * The sample index at scale (synthetic LAION-like samples, this machine): shard runs written by one process as
 * fetch writes them (10,000 rows per shard: URL normalisation + hash, sort, Parquet), the rate measured per
 * segment as the index grows, with a profile of where a shard's time goes; then `index compact` of everything,
 * point look-ups by URL hash and by sha256 as the server makes them (src/index-db/run-lookup.ts: cold = footer
 * and row group read from the file, the OS page cache not dropped; warm = cached row group), with a DuckDB query
 * per look-up as the baseline in the same run, the `optout apply` planning join of K opted-out URLs, and disk
 * bytes per sample. Sizes default to 0.5M / 1M / 2M rows (`--quick`: 100k / 200k); `--sizes 10M,50M` for more.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import {
  encodeRun,
  runsByUrlHash,
  runsOptedOut,
  writeCompacted,
  writeRun,
  type RunSet,
} from '../src/index-db/sample-runs.ts';
import { RunLookup, runRef, type RunRef } from '../src/index-db/run-lookup.ts';
import { sampleUrlHash } from '../src/index-db/db.ts';
import { urlHashLoose } from '../src/optout/normalize-url.ts';
import { syntheticUrl } from './index-optout.ts';
import { shardRows } from './index-engines.ts';
import { markdownTable, round } from './lib.ts';

const SHARD = 10_000;

async function du(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  return total;
}

function pct(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return {
    p50_ms: round(s[Math.floor(s.length / 2)], 3),
    p99_ms: round(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))], 3),
  };
}

async function freshConnection(): Promise<DuckDBConnection> {
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  await con.run('LOAD parquet; SET parquet_metadata_cache = true');
  return con;
}

export async function benchIndexScale(
  opts: { quick?: boolean; sizes?: number[]; log?: (m: string) => void } = {},
): Promise<object> {
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
      segments.push({
        rows_total: shard * SHARD,
        record_rows_per_s: Math.round(((shard - first) * SHARD) / s),
        cpu_ms_per_shard: round(cpu / (shard - first), 1),
      });
      log(`${shard * SHARD} rows: ${segments.at(-1)!.record_rows_per_s} rows/s recording`);
    }
    // Where a shard's recording time goes (CPU time of this process, the steady figure on a loaded machine;
    // 10 shards): URL normalisation + hash, the whole encoding (hashes, sort, Parquet), the same with the URL
    // hashes the fetch computed for its opt-out test, and the atomic write (tmp + fsync + rename + dir fsync).
    const prof = {
      url_hash_ms: [] as number[],
      encode_ms: [] as number[],
      encode_known_ms: [] as number[],
      write_ms: [] as number[],
    };
    const cpuMs = async (fn: () => unknown) => {
      const c = process.cpuUsage();
      await fn();
      const u = process.cpuUsage(c);
      return (u.user + u.system) / 1000;
    };
    for (let i = 0; i < 10; i++) {
      const rows = shardRows(i, seed);
      let known = new Map<string, Buffer>();
      prof.url_hash_ms.push(await cpuMs(() => (known = new Map(rows.map((r) => [r.key, sampleUrlHash(r.url)])))));
      prof.encode_known_ms.push(await cpuMs(() => encodeRun(rows, i, (r) => known.get(r.key))));
      prof.encode_ms.push(await cpuMs(() => encodeRun(rows, i)));
      prof.write_ms.push(await cpuMs(() => writeRun(path.join(dir, 'profile', `${i}.index.parquet`), rows, i)));
    }
    await rm(path.join(dir, 'profile'), { recursive: true, force: true });
    const med = (xs: number[]) => round([...xs].sort((a, b) => a - b)[xs.length >> 1], 1);
    const profile = {
      url_hash_ms: med(prof.url_hash_ms),
      encode_ms: med(prof.encode_ms),
      encode_with_fetch_hashes_ms: med(prof.encode_known_ms),
      write_run_ms: med(prof.write_ms),
    };
    log(
      `CPU per 10k-row shard (median): URL normalise + hash ${profile.url_hash_ms} ms, encode ${profile.encode_ms} ms, writeRun ${profile.write_run_ms} ms`,
    );
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
    const u64 = (b: Buffer) => b.readBigUInt64BE(0);
    const urlRefs = [await runRef(byUrl)];
    const shaRefs = [await runRef(bySha)];
    const shardRefs: RunRef[] = await Promise.all(files.map((f) => runRef(f, 1)));
    const found = (n: number) => {
      if (!n) throw new Error('look-up found nothing');
    };
    // Open: the first look-up of a process (reads and parses the footer, then one row group).
    const openMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      found((await new RunLookup().find(urlRefs, 'url_hash', u64(urlHashLoose(probes[i].url)))).length);
      openMs.push(performance.now() - t0);
    }
    // Cold: footer cached, every row group read from the file (a cache that holds nothing), different rows.
    const coldN = Math.min(lookups, 200);
    const noCache = new RunLookup({ keyRows: 1, rowsRows: 1 });
    await noCache.find(urlRefs, 'url_hash', 0n);
    await noCache.find(shaRefs, 'sha_hi', 0n);
    const coldUrl = await time(coldN, async (i) =>
      found((await noCache.find(urlRefs, 'url_hash', u64(urlHashLoose(probes[i].url)))).length),
    );
    const coldSha = await time(coldN, async (i) => {
      const b = Buffer.from(probes[i].sha256 ?? probes[0].sha256!, 'hex');
      found((await noCache.find(shaRefs, 'sha_hi', u64(b), (r) => r.sha256 !== null && r.sha256.equals(b))).length);
    });
    // Warm: 50 rows looked up over and over (the cache holds their row groups).
    const lookup = new RunLookup();
    for (let i = 0; i < 50; i++) await lookup.find(urlRefs, 'url_hash', u64(urlHashLoose(probes[i].url)));
    const warmUrl = await time(lookups, async (i) =>
      found((await lookup.find(urlRefs, 'url_hash', u64(urlHashLoose(probes[i % 50].url)))).length),
    );
    const warmSha = await time(lookups, async (i) => {
      const b = Buffer.from(probes[i % 50].sha256 ?? probes[0].sha256!, 'hex');
      found((await lookup.find(shaRefs, 'sha_hi', u64(b), (r) => r.sha256 !== null && r.sha256.equals(b))).length);
    });
    // Every run before compaction: each shard run's key column is searched (their hash ranges all overlap).
    const uncompactedCold = await time(Math.min(lookups, 20), async (i) =>
      found((await noCache.find(shardRefs, 'url_hash', u64(urlHashLoose(probes[i].url)))).length),
    );
    for (let i = 0; i < 50; i++) await lookup.find(shardRefs, 'url_hash', u64(urlHashLoose(probes[i].url)));
    const uncompactedWarm = await time(Math.min(lookups, 200), async (i) =>
      found((await lookup.find(shardRefs, 'url_hash', u64(urlHashLoose(probes[i % 50].url)))).length),
    );
    // Baseline in the same run: the same warm look-ups as one DuckDB query each.
    con = await freshConnection();
    for (let i = 0; i < 20; i++) await runsByUrlHash(con, set, urlHashLoose(probes[i].url));
    const duckWarm = await time(Math.min(lookups, 200), (i) =>
      runsByUrlHash(con, set, urlHashLoose(probes[i % 50].url)),
    );
    // Planning: K opted-out URLs, half of them in the index.
    const hashes = Array.from({ length: optoutK }, (_, i) =>
      urlHashLoose(syntheticUrl(i % 2 ? (i * 104729) % N : N + i)),
    );
    t = performance.now();
    const planned = await runsOptedOut(
      con,
      set,
      1,
      () => hashes,
      () => [],
    );
    const planS = (performance.now() - t) / 1000;
    con.closeSync();
    const perSample = (b: number) => round(b / N, 1);
    const results = {
      rows: N,
      segments,
      recording_profile: profile,
      compact_s: round(compactS),
      lookup_open: pct(openMs),
      lookup_url_cold: coldUrl,
      lookup_sha_cold: coldSha,
      lookup_url_warm: warmUrl,
      lookup_sha_warm: warmSha,
      lookup_url_uncompacted_cold: uncompactedCold,
      lookup_url_uncompacted_warm: uncompactedWarm,
      lookup_url_duckdb_query_warm: duckWarm,
      optout_plan_s: round(planS),
      optout_plan_matches: planned.length,
      bytes_per_sample_shard_runs: perSample(shardBytes),
      bytes_per_sample_compacted_url: perSample(urlBytes),
      bytes_per_sample_compacted_both: perSample(compactBytes),
    };
    const pp = (x: { p50_ms: number; p99_ms: number }) => `${x.p50_ms} / ${x.p99_ms}`;
    const table = [
      markdownTable(
        ['rows in the index', 'record rows/s (one process)', 'CPU ms per 10k-row shard'],
        segments.map((s) => [s.rows_total, s.record_rows_per_s, s.cpu_ms_per_shard]),
      ),
      '',
      `CPU ms per 10k-row shard (median of 10): URL normalise + hash ${profile.url_hash_ms} ms, encode (all hashes, sort, Parquet) ${profile.encode_ms} ms (${profile.encode_with_fetch_hashes_ms} ms with the fetch's URL hashes), writeRun (encode + tmp, fsync, rename) ${profile.write_run_ms} ms.`,
      '',
      markdownTable(
        [
          'at rows',
          'compact s',
          'first look-up (footer) p50/p99 ms',
          'URL cold p50/p99 ms',
          'URL warm p50/p99 ms',
          'sha256 cold / warm p50/p99 ms',
          'uncompacted URL cold / warm ms',
          'DuckDB query warm ms',
        ],
        [
          [
            N,
            results.compact_s,
            pp(results.lookup_open),
            pp(coldUrl),
            pp(warmUrl),
            `${pp(coldSha)} ; ${pp(warmSha)}`,
            `${pp(uncompactedCold)} ; ${pp(uncompactedWarm)}`,
            pp(duckWarm),
          ],
        ],
      ),
      '',
      markdownTable(
        [`plan ${optoutK} opt-out URLs s`, 'bytes/sample: shard runs / compacted by URL / both orders'],
        [
          [
            `${results.optout_plan_s} (${planned.length} matches)`,
            `${results.bytes_per_sample_shard_runs} / ${results.bytes_per_sample_compacted_url} / ${results.bytes_per_sample_compacted_both}`,
          ],
        ],
      ),
    ].join('\n');
    log(`\n${table}`);
    return { config: { sizes, shard_rows: SHARD, lookups, optout_urls: optoutK }, ...results, table };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
