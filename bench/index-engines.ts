/**
 * The engine choice for the sample index: DuckDB over sorted Parquet runs vs LevelDB (classic-level, an LSM
 * key-value store), on the same synthetic samples (LAION-like URLs, random sha256 / dHash), in this process:
 * - recording: rows/s writing shards of 10,000 rows (DuckDB: one sorted Parquet run per shard, as fetch does;
 *   LevelDB: one write batch per shard, a url-hash key and a sha256 key per sample);
 * - point look-ups p50/p99 (warm), by URL hash and by sha256 (DuckDB: after compacting the runs into one sorted
 *   run pair; LevelDB: after its own compaction);
 * - a batch join: K opt-out URL hashes against all rows (DuckDB: one hash join; LevelDB: K seeks);
 * - disk bytes per sample.
 * LevelDB is a devDependency for this benchmark only.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ClassicLevel } from 'classic-level';
import {
  connect,
  runsByUrlHash,
  runsBySha256,
  runsOptedOut,
  writeCompacted,
  writeRun,
  type RunSet,
} from '../src/index-db/sample-runs.ts';
import { urlHashLoose } from '../src/optout/normalize-url.ts';
import type { SampleInput } from '../src/index-db/db.ts';
import { syntheticUrl } from './index-optout.ts';
import { markdownTable, round } from './lib.ts';

const SHARD = 10_000;

type Row = Omit<SampleInput, 'shard'>;

export function shardRows(shard: number, seedShas: Buffer): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < SHARD; i++) {
    const n = shard * SHARD + i;
    const sha = seedShas.subarray(
      ((n * 41) % (seedShas.length / 32 - 1)) * 32,
      ((n * 41) % (seedShas.length / 32 - 1)) * 32 + 32,
    );
    rows.push({
      key: String(shard).padStart(5, '0') + String(i).padStart(4, '0'),
      url: syntheticUrl(n),
      sha256:
        i % 10 === 9
          ? null
          : Buffer.concat([sha.subarray(0, 28), Buffer.from(Uint32Array.of(n).buffer)]).toString('hex'),
      phash: i % 10 === 9 ? null : sha.subarray(0, 8).toString('hex'),
      caption: `caption ${n}`,
      status: i % 10 === 9 ? 'failed' : 'ok',
    });
  }
  return rows;
}

async function du(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  return total;
}

function pct(xs: number[]): { p50_ms: number; p99_ms: number } {
  const s = [...xs].sort((a, b) => a - b);
  return {
    p50_ms: round(s[Math.floor(s.length / 2)], 3),
    p99_ms: round(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))], 3),
  };
}

async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

export async function benchEngines(opts: { quick?: boolean; log?: (m: string) => void } = {}): Promise<object> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`[bench index-engines] ${m}\n`));
  const shards = opts.quick ? 20 : 100;
  const lookups = opts.quick ? 200 : 1000;
  const joinK = opts.quick ? 20_000 : 100_000;
  const N = shards * SHARD;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-engines-'));
  const seed = randomBytes(32 * 65_536);
  const probeRows = (i: number) => shardRows((i * 7) % shards, seed)[(i * 13) % SHARD];
  try {
    // --- DuckDB over Parquet runs
    log(`DuckDB: ${shards} shard runs of ${SHARD} rows`);
    let t = performance.now();
    const files: string[] = [];
    for (let s = 0; s < shards; s++) {
      const f = path.join(dir, 'duck', `${String(s).padStart(5, '0')}.index.parquet`);
      await writeRun(f, shardRows(s, seed), s);
      files.push(f);
    }
    const duckWrite = N / ((performance.now() - t) / 1000);
    const shardRunBytes = await du(path.join(dir, 'duck'));
    const con = await connect();
    t = performance.now();
    const uncompacted: RunSet = { shardRuns: [{ datasetId: 1, files }], compacted: [], stale: [] };
    await writeCompacted(
      con,
      uncompacted,
      path.join(dir, 'duckc', 'c.url.parquet'),
      path.join(dir, 'duckc', 'c.sha.parquet'),
    );
    const duckCompactS = (performance.now() - t) / 1000;
    const set: RunSet = {
      shardRuns: [],
      compacted: [{ byUrl: path.join(dir, 'duckc', 'c.url.parquet'), bySha: path.join(dir, 'duckc', 'c.sha.parquet') }],
      stale: [],
    };
    const compactBytes = await du(path.join(dir, 'duckc'));
    const probes = Array.from({ length: lookups }, (_, i) => probeRows(i));
    for (const p of probes.slice(0, 20)) await runsByUrlHash(con, set, urlHashLoose(p.url)); // warm
    const duckUrl = pct(
      await timeEach(lookups, async (i) => {
        const r = await runsByUrlHash(con, set, urlHashLoose(probes[i].url));
        if (!r.length) throw new Error('duckdb: url look-up found nothing');
      }),
    );
    const duckSha = pct(
      await timeEach(lookups, async (i) => {
        const sha = probes[i].sha256 ?? probes[(i + 1) % lookups].sha256!;
        await runsBySha256(con, set, Buffer.from(sha, 'hex'));
      }),
    );
    const uncompactedUrl = pct(
      await timeEach(Math.min(lookups, 100), async (i) => runsByUrlHash(con, uncompacted, urlHashLoose(probes[i].url))),
    );
    const optoutHashes = Array.from({ length: joinK }, (_, i) => urlHashLoose(syntheticUrl(i % 2 ? i * 3 : N + i)));
    t = performance.now();
    const joined = await runsOptedOut(
      con,
      set,
      1,
      () => optoutHashes,
      () => [],
    );
    const duckJoinS = (performance.now() - t) / 1000;
    con.closeSync();

    // --- LevelDB
    log(`LevelDB: ${shards} write batches of ${SHARD} rows`);
    const db = new ClassicLevel<Buffer, Buffer>(path.join(dir, 'level'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    await db.open();
    t = performance.now();
    for (let s = 0; s < shards; s++) {
      const batch = db.batch();
      for (const r of shardRows(s, seed)) {
        const k = Buffer.from(r.key);
        const sha = r.sha256 ? Buffer.from(r.sha256, 'hex') : Buffer.alloc(0);
        const value = Buffer.concat([
          Buffer.from([sha.length]),
          sha,
          Buffer.from(r.phash ?? '', 'hex'),
          Buffer.from(r.status),
        ]);
        batch.put(Buffer.concat([Buffer.from('u'), urlHashLoose(r.url), Buffer.from([0, 0, 0, 1]), k]), value);
        if (sha.length)
          batch.put(Buffer.concat([Buffer.from('s'), sha, Buffer.from([0, 0, 0, 1]), k]), Buffer.alloc(0));
      }
      await batch.write();
    }
    const levelWrite = N / ((performance.now() - t) / 1000);
    t = performance.now();
    await db.compactRange(Buffer.from('a'), Buffer.from('z'));
    const levelCompactS = (performance.now() - t) / 1000;
    const levelBytes = await du(path.join(dir, 'level'));
    const prefixScan = async (prefix: Buffer) => {
      const out: Buffer[] = [];
      for await (const [k] of db.iterator({
        gte: prefix,
        lt: Buffer.concat([prefix, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])]),
      }))
        out.push(k);
      return out;
    };
    const levelUrl = pct(
      await timeEach(lookups, async (i) => {
        const r = await prefixScan(Buffer.concat([Buffer.from('u'), urlHashLoose(probes[i].url)]));
        if (!r.length) throw new Error('leveldb: url look-up found nothing');
      }),
    );
    const levelSha = pct(
      await timeEach(lookups, async (i) =>
        prefixScan(
          Buffer.concat([Buffer.from('s'), Buffer.from(probes[i].sha256 ?? probes[(i + 1) % lookups].sha256!, 'hex')]),
        ),
      ),
    );
    t = performance.now();
    let levelJoined = 0;
    for (const h of optoutHashes) levelJoined += (await prefixScan(Buffer.concat([Buffer.from('u'), h]))).length;
    const levelJoinS = (performance.now() - t) / 1000;
    await db.close();
    const duckJoined = joined.length;
    const expectedJoined = Math.ceil(joinK / 2) - Math.ceil(joinK / 2 / 10) - 1; // odd i with i*3 < N and not a failed row: approximate
    void expectedJoined;

    const results = {
      rows: N,
      duckdb: {
        write_rows_per_s: Math.round(duckWrite),
        compact_s: round(duckCompactS),
        url_lookup: duckUrl,
        sha_lookup: duckSha,
        url_lookup_uncompacted: uncompactedUrl,
        join_s: round(duckJoinS),
        join_matches: duckJoined,
        bytes_per_sample_shard_runs: round(shardRunBytes / N, 1),
        bytes_per_sample_compacted: round(compactBytes / N, 1),
      },
      leveldb: {
        write_rows_per_s: Math.round(levelWrite),
        compact_s: round(levelCompactS),
        url_lookup: levelUrl,
        sha_lookup: levelSha,
        join_s: round(levelJoinS),
        join_matches: levelJoined,
        bytes_per_sample: round(levelBytes / N, 1),
      },
    };
    const table = markdownTable(
      [
        'engine',
        'record rows/s',
        'compact s',
        'URL p50/p99 ms',
        'sha256 p50/p99 ms',
        `join ${joinK} URLs s`,
        'bytes/sample',
      ],
      [
        [
          'DuckDB, sorted Parquet runs',
          results.duckdb.write_rows_per_s,
          results.duckdb.compact_s,
          `${duckUrl.p50_ms} / ${duckUrl.p99_ms} (uncompacted ${uncompactedUrl.p50_ms} / ${uncompactedUrl.p99_ms})`,
          `${duckSha.p50_ms} / ${duckSha.p99_ms}`,
          `${results.duckdb.join_s} (${duckJoined} hits)`,
          `${results.duckdb.bytes_per_sample_shard_runs} shard runs, ${results.duckdb.bytes_per_sample_compacted} compacted (2 sort orders)`,
        ],
        [
          'LevelDB (classic-level)',
          results.leveldb.write_rows_per_s,
          results.leveldb.compact_s,
          `${levelUrl.p50_ms} / ${levelUrl.p99_ms}`,
          `${levelSha.p50_ms} / ${levelSha.p99_ms}`,
          `${results.leveldb.join_s} (${levelJoined} hits)`,
          results.leveldb.bytes_per_sample,
        ],
      ],
    );
    log(`\n${table}`);
    return { config: { rows: N, shard_rows: SHARD, lookups, join_urls: joinK }, ...results, table };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
