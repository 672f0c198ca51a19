/**
 * Opt-out index benchmark: with 10 million opted-out URLs in the index,
 * - import rate (URLs/s) of `optout import` on a generated one-URL-per-line stream (parse, normalise, hash,
 *   sorted batch insert), wall clock and per CPU second (the machine is shared: CPU time is the steadier figure);
 * - `check` latency p50/p99 in-process: the opt-out lookup alone (one statement), and the full check
 *   (checkUrl: opt-out + samples holding the URL + their images, one read transaction) with samples recorded;
 * - cost of the opt-out test inside fetch per row (normalise + hash + prepared lookup), and of recording a
 *   finished shard of 10,000 rows;
 * - index size in bytes per URL.
 * Targets: import >= 300k URLs/s, check p99 <= 50 us.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { openIndex } from '../src/index-db/db.ts';
import { openFetchIndex } from '../src/index-db/fetch-index.ts';
import { OptoutStore } from '../src/optout/store.ts';
import { importOptouts } from '../src/optout/import.ts';
import { urlHash } from '../src/optout/normalize-url.ts';
import type { ManifestRow } from '../src/dataset/manifest.ts';

export interface OptoutBenchOptions {
  quick?: boolean;
  /** URLs to import (default 10M, quick 200k). */
  urls?: number;
  /** Parse in the importing thread instead of a worker thread. */
  serial?: boolean;
  log?: (m: string) => void;
}

const HOSTS = [
  'i.pinimg.com',
  'cdn.shopify.com',
  'images-na.ssl-images-amazon.com',
  'live.staticflickr.com',
  'upload.wikimedia.org',
  'media.istockphoto.com',
  'www.example-shop.de',
  'img.alicdn.com',
];

/** A LAION-like image URL, distinct for each i (about 90 characters). */
export function syntheticUrl(i: number): string {
  const h = Math.imul(i, 2654435761) >>> 0;
  return `https://${HOSTS[h % HOSTS.length]}/${(h >>> 8).toString(36)}/${i % 997}/photo-${i.toString(36)}_${(h & 0xfff).toString(16)}.jpg?w=${256 + (h % 4) * 256}`;
}

export function urlStream(n: number, offset = 0): Readable {
  function* chunks() {
    let buf = '';
    for (let i = 0; i < n; i++) {
      buf += syntheticUrl(offset + i) + '\n';
      if (buf.length >= 1 << 16) {
        yield buf;
        buf = '';
      }
    }
    if (buf) yield buf;
  }
  return Readable.from(chunks(), { objectMode: false });
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function percentiles(ns: Float64Array): { p50_us: number; p99_us: number; mean_us: number } {
  const s = Float64Array.from(ns).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] / 1000;
  const r = (x: number) => Math.round(x * 100) / 100;
  return { p50_us: r(at(0.5)), p99_us: r(at(0.99)), mean_us: r(s.reduce((a, b) => a + b, 0) / s.length / 1000) };
}

function timeEach(n: number, fn: (i: number) => unknown): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    fn(i);
    out[i] = Number(process.hrtime.bigint() - t);
  }
  return out;
}

export async function benchOptout(opts: OptoutBenchOptions = {}): Promise<object> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`[bench index-optout] ${m}\n`));
  const N = opts.urls ?? (opts.quick ? 200_000 : 10_000_000);
  const LOOKUPS = opts.quick ? 20_000 : 200_000;
  const SAMPLES = opts.quick ? 50_000 : 1_000_000;
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-optout-'));
  try {
    // 1. Import.
    const index = openIndex(dataRoot);
    const store = new OptoutStore(index);
    log(`importing ${N} generated URLs into ${dataRoot}`);
    let t = performance.now();
    let c = cpuMs();
    const rep = await importOptouts(store, urlStream(N), { parallel: !opts.serial });
    const importS = (performance.now() - t) / 1000;
    const importCpuS = (cpuMs() - c) / 1000;
    if (rep.urls.added !== N || rep.errorCount)
      throw new Error(`import: expected ${N} new URLs, got ${JSON.stringify(rep.urls)} with ${rep.errorCount} errors`);
    log(`import: ${importS.toFixed(1)} s wall, ${importCpuS.toFixed(1)} s CPU`);

    // Generation alone, to subtract from the import figure.
    t = performance.now();
    c = cpuMs();
    for await (const _ of urlStream(N)) void _;
    const genS = (performance.now() - t) / 1000;
    const genCpuS = (cpuMs() - c) / 1000;

    // 2. Samples recorded by fetch (so that check finds some), in shards of 10,000 rows.
    const datasetId = index.registerDataset('bench', path.join(dataRoot, 'bench'));
    const rows = (shard: number, n: number): ManifestRow[] =>
      Array.from({ length: n }, (_, j) => {
        const i = shard * 10_000 + j;
        const h = (Math.imul(i, 40503) >>> 0).toString(16).padStart(8, '0');
        return {
          key: `${String(shard).padStart(5, '0')}${String(j).padStart(4, '0')}`,
          row: i,
          url: syntheticUrl(i),
          caption: `a caption for sample ${i}`,
          status: 'ok',
          reason: null,
          error: null,
          width: 256,
          height: 256,
          original_width: 512,
          original_height: 512,
          bytes: 30_000,
          sha256: h.repeat(8),
          phash: h.repeat(2),
          cls: null,
          meta: null,
        };
      });
    const fetchIndex = openFetchIndex(dataRoot, 'bench', path.join(dataRoot, 'bench'));
    t = performance.now();
    // Into the old samples table of index.sqlite (sample runs are measured by `index-scale`).
    for (let s = 0; s < SAMPLES / 10_000; s++)
      index.recordSamples(
        fetchIndex.datasetId,
        rows(s, 10_000).map((r) => ({ ...r, shard: s })),
      );
    const recordMsPerShard = (performance.now() - t) / (SAMPLES / 10_000);
    void datasetId;

    // 3. Lookups: half opted out (hits), half not.
    const hitUrl = (i: number) => syntheticUrl((i * 7919) % N);
    const missUrl = (i: number) => syntheticUrl(N + i);
    const lookup = percentiles(timeEach(LOOKUPS, (i) => store.hasUrl(i % 2 ? hitUrl(i) : missUrl(i))));
    // checkUrl's SQLite part: the opt-out and the old samples table (the sample runs are DuckDB, async: index-scale).
    const check = percentiles(
      timeEach(LOOKUPS, (i) => {
        const h = urlHash(i % 2 ? hitUrl(i) : missUrl(i));
        return [store.storedUrlByHash(h), index.samplesByUrlHash(h)];
      }),
    );

    // 4. The test inside fetch: almost every row is not opted out.
    const fetchRow = percentiles(timeEach(LOOKUPS, (i) => fetchIndex.urlOptedOut(missUrl(i))));
    const urlsOnly = percentiles(timeEach(LOOKUPS, (i) => missUrl(i)));
    fetchIndex.close();

    // 5. Size: checkpoint the WAL into the file first.
    index.db.pragma('wal_checkpoint(TRUNCATE)');
    const optoutBytes =
      (index.db.prepare("SELECT sum(pgsize) FROM dbstat WHERE name IN ('optout_urls')").pluck().get() as
        number | null) ?? NaN;
    index.close();
    const fileBytes = (await stat(path.join(dataRoot, 'index.sqlite'))).size;

    const r = (x: number, d = 0) => Math.round(x * 10 ** d) / 10 ** d;
    const results = {
      urls: N,
      import_s: r(importS, 2),
      import_urls_per_s: r(N / importS),
      import_urls_per_cpu_s: r(N / importCpuS),
      import_urls_per_s_excluding_generation: r(N / Math.max(importS - genS, 1e-9)),
      import_urls_per_cpu_s_excluding_generation: r(N / Math.max(importCpuS - genCpuS, 1e-9)),
      lookup_us: lookup,
      check_us: check,
      fetch_optout_test_us_per_row: { ...fetchRow, of_which_generating_the_url_us: urlsOnly.mean_us },
      record_shard_10k_rows_ms: r(recordMsPerShard, 1),
      record_us_per_row: r((recordMsPerShard * 1000) / 10_000, 2),
      samples_recorded: SAMPLES,
      optout_table_bytes_per_url: r(optoutBytes / N, 1),
      index_file_bytes: fileBytes,
    };
    const table = [
      '| opt-out index | value | target |',
      '|---|---|---|',
      `| import, ${N.toLocaleString('en')} URLs | ${results.import_urls_per_s.toLocaleString('en')} URLs/s wall, ${results.import_urls_per_cpu_s.toLocaleString('en')} per CPU-s | ≥ 300,000 URLs/s |`,
      `| opt-out lookup p50 / p99 | ${lookup.p50_us} / ${lookup.p99_us} µs | |`,
      `| check (lookup + samples) p50 / p99 | ${check.p50_us} / ${check.p99_us} µs | p99 ≤ 50 µs |`,
      `| opt-out test in fetch, per row | ${fetchRow.mean_us} µs mean, ${fetchRow.p99_us} µs p99 | |`,
      `| recording a 10,000-row shard | ${results.record_shard_10k_rows_ms} ms | |`,
      `| index size (optout_urls) | ${results.optout_table_bytes_per_url} bytes/URL | |`,
    ].join('\n');
    return {
      config: {
        urls: N,
        lookups: LOOKUPS,
        samples: SAMPLES,
        quick: !!opts.quick,
        loadavg_at_end: os.loadavg().map((x) => r(x, 2)),
      },
      results,
      targets: { import_urls_per_s: 300_000, check_p99_us: 50 },
      notes: [
        'URLs are generated in-process (~90 characters, LAION-like); the generation cost is measured separately and reported.',
        'bytes/URL counts the optout_urls table pages (hash key + the original URL kept for display + date).',
      ],
      table,
    };
  } finally {
    await rm(dataRoot, { recursive: true, force: true });
  }
}

// `node --import tsx bench/index-optout.ts [--quick] [--urls N]` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const i = process.argv.indexOf('--urls');
  const res = (await benchOptout({
    quick,
    serial: process.argv.includes('--serial'),
    urls: i > 0 ? Number(process.argv[i + 1]) : undefined,
  })) as { table: string };
  console.log(JSON.stringify(res, null, 2));
  console.log(res.table);
}
