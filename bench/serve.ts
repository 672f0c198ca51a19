/**
 * `muse-data serve` under load: requests/s and latency percentiles of the opt-out URL lookup and of an
 * explorer grid page, with N opted-out URLs and S samples in the index, measured by a loopback load generator
 * (autocannon) against the real command running in its own process (so server and load generator each have a
 * core). Baseline in the same run: a static script file (the framework's floor on this machine).
 *
 * Sizes: default 1M URLs / 20k samples; `--full` 10M / 100k (the target size); `--quick` 100k / 5k.
 * Target: lookup p99 <= 10 ms at 500 requests/s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { openIndex } from '../src/index-db/db.ts';
import { OptoutStore } from '../src/optout/store.ts';
import { importOptouts } from '../src/optout/import.ts';
import { writeManifest, type ManifestRow } from '../src/dataset/manifest.ts';
import { shardPaths } from '../src/dataset/names.ts';
import { summarize } from '../src/dataset/stats.ts';
import { buildServer } from '../src/server/app.ts';
import { writeRun } from '../src/index-db/sample-runs.ts';
import { compactIndex } from '../src/dataset/sample-index.ts';
import { median, round } from './lib.ts';
import { syntheticUrl, urlStream } from './index-optout.ts';

export interface ServeBenchOptions {
  quick?: boolean;
  full?: boolean;
  log?: (m: string) => void;
}

const WORDS = [
  'red',
  'blue',
  'green',
  'dog',
  'cat',
  'house',
  'tree',
  'car',
  'beach',
  'mountain',
  'city',
  'night',
  'portrait',
  'flower',
  'river',
  'old',
  'new',
  'small',
  'large',
  'photo',
];
const PER_SHARD = 10_000;

function caption(i: number): string {
  const h = Math.imul(i + 1, 2654435761) >>> 0;
  return `a ${WORDS[h % 20]} ${WORDS[(h >>> 5) % 20]} ${WORDS[(h >>> 10) % 20]} in the ${WORDS[(h >>> 15) % 20]}`;
}

/** Writes S samples as shard manifests + stats (no tars: the grid page reads the index, thumbnails are separate requests). */
async function writeDataset(dir: string, samples: number): Promise<ManifestRow[][]> {
  await mkdir(path.join(dir, 'shards'), { recursive: true });
  const shards: ManifestRow[][] = [];
  for (let s = 0; s * PER_SHARD < samples; s++) {
    const rows: ManifestRow[] = [];
    for (let i = s * PER_SHARD; i < Math.min(samples, (s + 1) * PER_SHARD); i++) {
      const status = i % 10 === 9 ? 'failed' : 'ok';
      rows.push({
        key: `${String(s).padStart(5, '0')}${String(i - s * PER_SHARD).padStart(4, '0')}`,
        row: i,
        url: syntheticUrl(i),
        caption: caption(i),
        status,
        reason: status === 'failed' ? 'http_404' : null,
        error: null,
        width: status === 'ok' ? 256 : null,
        height: status === 'ok' ? 256 : null,
        original_width: 512,
        original_height: 384,
        bytes: 40_000,
        sha256: null,
        phash: null,
        cls: null,
        meta: null,
      });
    }
    const p = shardPaths(dir, s);
    await writeManifest(p.manifest, rows);
    await writeFile(p.stats, JSON.stringify({ shard: s, ...summarize(rows) }) + '\n');
    shards.push(rows);
  }
  return shards;
}

function startServer(dataRoot: string): Promise<{ child: ChildProcess; origin: string }> {
  const bin = path.join(import.meta.dirname, '..', 'bin', 'muse-data.js');
  const child = spawn(
    process.execPath,
    [bin, 'serve', '--data-root', dataRoot, '--port', '0', '--search-rate', '1000000000'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (c: Buffer) => {
      err += c;
      const m = /serve: (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) resolve({ child, origin: m[1] });
    });
    child.on('exit', (code) => reject(new Error(`muse-data serve exited (${code}): ${err}`)));
  });
}

interface Load {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  non2xx: number;
}

async function load(
  origin: string,
  paths: () => string,
  opts: { seconds: number; connections: number; rate?: number },
): Promise<Load> {
  const r = await autocannon({
    url: origin,
    connections: opts.connections,
    duration: opts.seconds,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: paths() }) }],
  });
  return {
    rps: round(r.requests.average, 1),
    p50_ms: r.latency.p50,
    p99_ms: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

export async function benchServe(opts: ServeBenchOptions = {}): Promise<object> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`[bench serve] ${m}\n`));
  const N = opts.quick ? 100_000 : opts.full ? 10_000_000 : 1_000_000;
  const S = opts.quick ? 5_000 : opts.full ? 100_000 : 20_000;
  const seconds = opts.quick ? 2 : 5;
  const runs = opts.quick ? 1 : 3;
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-serve-'));
  let server: ChildProcess | undefined;
  try {
    log(`building the index: ${N} opted-out URLs, ${S} samples`);
    const t0 = performance.now();
    const index = openIndex(dataRoot);
    // The project's importer (`optout import`): parsing in a worker thread, staged bulk insert.
    const imported = await importOptouts(new OptoutStore(index), urlStream(N), { parallel: true });
    if (imported.urls.added !== N) throw new Error(`imported ${imported.urls.added} of ${N} URLs`);
    const optoutS = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const dir = path.join(dataRoot, 'bench');
    const shards = await writeDataset(dir, S);
    const id = index.registerDataset('bench', dir);
    // As a fetch leaves them (a run beside each shard), then compacted as `muse-data index compact` does.
    for (const [s, rows] of shards.entries()) await writeRun(shardPaths(dir, s).indexRun, rows, s);
    await compactIndex(index);
    index.close();
    const samplesS = (performance.now() - t1) / 1000;

    log('starting muse-data serve (first serve builds the explorer tables and the caption index)');
    const t2 = performance.now();
    const started = await startServer(dataRoot);
    server = started.child;
    const startS = (performance.now() - t2) / 1000;
    const origin = started.origin;

    let n = 0;
    const rnd = () => {
      n = (Math.imul(n + 1, 1103515245) + 12345) >>> 0;
      return n;
    };
    const lookupPath = () => `/api/optout/lookup?url=${encodeURIComponent(syntheticUrl(rnd() % N))}`;
    const pages = Math.floor((S * 0.9) / 48);
    const gridPath = () => `/datasets/bench?status=ok&page=${1 + (rnd() % Math.min(pages, 100))}`;
    const searchPath = () => `/datasets/bench?q=${WORDS[rnd() % 20]}+${WORDS[rnd() % 20]}`;
    const staticPath = () => '/static/optout.js';
    const check = await fetch(`${origin}${lookupPath()}`);
    if (check.status !== 200) throw new Error(`lookup answered ${check.status}: ${await check.text()}`);

    const kinds: Array<[string, () => string, { connections: number; rate?: number }]> = [
      ['static file (baseline)', staticPath, { connections: 10 }],
      ['static file at 500 req/s (baseline)', staticPath, { connections: 10, rate: 500 }],
      ['URL lookup, max', lookupPath, { connections: 10 }],
      ['URL lookup at 500 req/s', lookupPath, { connections: 10, rate: 500 }],
      ['grid page (48 samples), max', gridPath, { connections: 10 }],
      ['grid page + caption search, max', searchPath, { connections: 10 }],
    ];
    const results: Record<string, Load[]> = {};
    for (let r = 0; r < runs; r++) {
      for (const [name, p, o] of kinds) {
        log(`run ${r + 1}/${runs}: ${name}`);
        (results[name] ??= []).push(await load(origin, p, { seconds, ...o }));
      }
    }
    const med = Object.fromEntries(
      Object.entries(results).map(([k, rs]) => [
        k,
        {
          rps: median(rs.map((x) => x.rps)),
          p50_ms: median(rs.map((x) => x.p50_ms)),
          p99_ms: median(rs.map((x) => x.p99_ms)),
          errors: rs.reduce((a, x) => a + x.errors + x.non2xx, 0),
        },
      ]),
    );
    server.kill('SIGTERM');
    server = undefined;

    // The same routes in this process through fastify's inject (no sockets, no load generator): the server's own
    // cost per request.
    log('in-process latency (fastify inject)');
    const app = await buildServer({ dataRoot, searchRateLimit: 1e9 });
    const inProcess: Record<string, { p50_ms: number; p99_ms: number }> = {};
    try {
      for (const [name, p, count] of [
        ['URL lookup', lookupPath, opts.quick ? 2000 : 20000],
        ['grid page (48 samples)', gridPath, opts.quick ? 300 : 2000],
        ['grid page + caption search', searchPath, opts.quick ? 300 : 2000],
      ] as const) {
        const t = new Float64Array(count);
        for (let i = 0; i < count; i++) {
          const s0 = performance.now();
          const r = await app.inject(p());
          t[i] = performance.now() - s0;
          if (r.statusCode !== 200) throw new Error(`${name}: ${r.statusCode} ${r.body.slice(0, 200)}`);
        }
        t.sort();
        inProcess[name] = {
          p50_ms: round(t[Math.floor(count * 0.5)], 3),
          p99_ms: round(t[Math.floor(count * 0.99)], 3),
        };
      }
    } finally {
      await app.close();
    }
    const baseRps = med['static file (baseline)'].rps;
    const base500 = med['static file at 500 req/s (baseline)'];
    const lines = [
      '| request | requests/s | p50 ms | p99 ms | vs static file | errors / non-2xx |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      ...Object.entries(med).map(
        ([k, m]) => `| ${k} | ${m.rps} | ${m.p50_ms} | ${m.p99_ms} | ${round(m.rps / baseRps, 2)} | ${m.errors} |`,
      ),
    ];
    const at500 = med['URL lookup at 500 req/s'];
    return {
      config: {
        optout_urls: N,
        samples: S,
        seconds_per_measurement: seconds,
        runs,
        connections: 10,
        load_generator: 'autocannon (this process), server: muse-data serve (child process)',
      },
      build: {
        optout_import_s: round(optoutS, 1),
        samples_and_manifests_s: round(samplesS, 1),
        serve_start_with_explorer_build_s: round(startS, 1),
      },
      measurements: results,
      medians_table: med,
      in_process: inProcess,
      targets: {
        lookup_p99_ms_at_500rps: {
          target: 10,
          measured: at500.p99_ms,
          static_file_p99_ms_at_500rps: base500.p99_ms,
          met: at500.p99_ms <= 10 && at500.rps >= 490,
        },
      },
      table:
        lines.join('\n') +
        `\n\nIn process (fastify inject, no socket): URL lookup p50 ${inProcess['URL lookup'].p50_ms} ms, p99 ${inProcess['URL lookup'].p99_ms} ms; ` +
        `grid page p50 ${inProcess['grid page (48 samples)'].p50_ms} ms, p99 ${inProcess['grid page (48 samples)'].p99_ms} ms; ` +
        `with caption search p50 ${inProcess['grid page + caption search'].p50_ms} ms, p99 ${inProcess['grid page + caption search'].p99_ms} ms.` +
        `\n\nIndex: ${N.toLocaleString('en')} opted-out URLs, ${S.toLocaleString('en')} samples; built in ${round(optoutS, 1)} s (URLs) + ${round(samplesS, 1)} s (samples, manifests); ` +
        `serve started in ${round(startS, 1)} s (explorer tables + FTS5 built from the manifests on first serve).`,
    };
  } finally {
    server?.kill('SIGTERM');
    await rm(dataRoot, { recursive: true, force: true });
  }
}
