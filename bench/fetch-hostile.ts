/**
 * `npm run bench -- fetch-hostile [--runs N] [--quick] [--flag-args "..."]`: `muse-data fetch` with DEFAULT download
 * flags on a hostile corpus and on a clean one, side by side in the same run (rotating order).
 *
 * Corpus: 4,000 rows (quick: 800), 4 shards, `--workers 2`, 256 px centre crop JPEG. The clean corpus is every row an
 * image from one origin; the hostile one spreads the same rows over 16 loopback origins (bench/fetch-hostile-corpus.ts:
 * the mix users met on the main origin, plus refusing, never-finishing-TLS, stalling-mid-body, rate-limiting, dying
 * and small healthy origins), served by bench/fetch-hostile-server.ts in its own process. Images are 400 generated
 * photos (bench/fetch-data.ts), reused round-robin.
 *
 * Measured per fetch, from the command's JSON progress lines (one a second): rows finished per second over the
 * whole run; the median of the 1-second rates; the slowest 10-second stretch before the tail (the tail: after 95%
 * of the rows); wall time. Targets: hostile rows/s ≥ 85% of clean; no 10-second stretch before the tail
 * under half the run's median rate; hostile wall time within one request timeout (timeout_s) of clean.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { DEFAULT_DOWNLOAD } from '../src/pipeline/config.ts';
import { ensureRendered } from './fetch-data.ts';
import { WORKERS, fetchArgs } from './fetch.ts';
import { cleanUrl, expectedCounts, hostileUrl, type OriginName } from './fetch-hostile-corpus.ts';
import type { FromHostile, ToHostile } from './fetch-hostile-server.ts';
import { markdownTable, median, round, spread, type BenchContext, type BenchReport } from './lib.ts';

const PROJECT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(PROJECT, 'bin', 'muse-data.js');
const IMAGES = 400;
const TAIL_FRACTION = 0.95;
const TARGETS = {
  rows_per_s_ratio_min: 0.85,
  worst_stretch_over_median_min: 0.5,
  wall_excess_max_s: DEFAULT_DOWNLOAD.timeout_s,
};

type Corpus = 'clean' | 'hostile';

interface FetchRun {
  corpus: Corpus;
  wall_s: number;
  rows: number;
  rows_per_s: number;
  ok: number;
  successes_per_s: number;
  median_rate: number;
  /** slowest 10-s stretch before the tail, rows/s */
  worst_10s_rate: number;
  worst_10s_at_s: number;
  tail_starts_s: number;
  status: Record<string, number>;
  reasons: Record<string, Record<string, number>>;
  cut_origins: unknown[];
  /** [seconds since start, rows finished] per progress line */
  series: Array<[number, number]>;
  peak_rss_mb: number;
}

function once<T>(child: ChildProcess, pick: (m: unknown) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown) => {
      const v = pick(m);
      if (v === undefined) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(v);
    };
    const onExit = (code: number | null) => reject(new Error(`server exited (code ${code}) before answering`));
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function writeCorpus(file: string, rows: number, url: (i: number) => string): Promise<void> {
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'URL', type: 'STRING', data: Array.from({ length: rows }, (_, i) => url(i)) },
      { name: 'TEXT', type: 'STRING', data: Array.from({ length: rows }, (_, i) => `a photo of thing number ${i}`) },
    ],
    codec: 'SNAPPY',
    rowGroupSize: 1000,
  });
  await writeFile(file, new Uint8Array(buffer));
}

/**
 * Rows/s over the 10-s stretches between the first finished row (before it: process start-up, the same for both
 * corpora) and `tailS`: the slowest one and where it starts.
 */
export function worstStretch(series: Array<[number, number]>, tailS: number, spanS = 10): { rate: number; at: number } {
  const rowsAt = (t: number) => {
    let r = 0;
    for (const [s, n] of series) if (s <= t) r = n;
    return r;
  };
  let worst = { rate: Infinity, at: NaN };
  const first = series.find(([, n]) => n > 0)?.[0] ?? 0;
  for (let t = first; t + spanS <= tailS; t += 0.5) {
    const rate = (rowsAt(t + spanS) - rowsAt(t)) / spanS;
    if (rate < worst.rate) worst = { rate, at: t };
  }
  return worst;
}

/** Whether this checkout's fetch has --progress-interval (an older one, measured as a baseline, prints every 5 s). */
function hasProgressInterval(): boolean {
  const help = spawnSync(process.execPath, [BIN, 'fetch', '--help'], { cwd: PROJECT, encoding: 'utf8' });
  return help.stdout.includes('--progress-interval');
}

async function fetchOnce(
  corpus: Corpus,
  parquet: string,
  samplesPerShard: number,
  work: string,
  extra: string[],
  names: Map<string, string>,
): Promise<FetchRun> {
  const out = await mkdtemp(path.join(work, `out-${corpus}-`));
  try {
    const args = [
      BIN,
      'fetch',
      ...fetchArgs(parquet, samplesPerShard),
      ...(hasProgressInterval() ? ['--progress-interval', '1'] : []),
      ...extra,
      '--out',
      out,
    ];
    const t0 = Date.now();
    const child = spawn(process.execPath, args, { cwd: PROJECT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((ok) => child.once('close', ok));
    const wall = (Date.now() - t0) / 1000;
    const summary = JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
    if (code !== 0 || !summary.status) throw new Error(`fetch (${corpus}) exited with ${code}: ${stderr.slice(-2000)}`);
    const series: Array<[number, number]> = [[0, 0]];
    for (const line of stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line);
      if (e.event === 'progress') series.push([round((Date.parse(e.time) - t0) / 1000, 2), e.rows]);
    }
    series.push([round(wall, 2), summary.rows]);
    const rates: number[] = [];
    for (let i = 1; i < series.length; i++) {
      const dt = series[i][0] - series[i - 1][0];
      if (dt > 0.2) rates.push((series[i][1] - series[i - 1][1]) / dt);
    }
    const tail = series.find(([, n]) => n >= TAIL_FRACTION * summary.rows)?.[0] ?? wall;
    const worst = worstStretch(series, tail);
    return {
      corpus,
      wall_s: round(wall, 2),
      rows: summary.rows,
      rows_per_s: round(summary.rows / wall, 1),
      ok: summary.status.ok,
      successes_per_s: round(summary.status.ok / wall, 1),
      median_rate: round(median(rates), 1),
      worst_10s_rate: Number.isFinite(worst.rate) ? round(worst.rate, 1) : NaN,
      worst_10s_at_s: worst.at,
      tail_starts_s: tail,
      status: summary.status,
      reasons: summary.reasons,
      cut_origins: (summary.cut_origins ?? []).map((c: { origin: string }) => ({
        ...c,
        name: names.get(c.origin) ?? '?',
      })),
      series,
      peak_rss_mb: summary.peak_rss_mb,
    };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

export async function benchFetchHostile(ctx: BenchContext): Promise<BenchReport> {
  const rows = ctx.quick ? 800 : 4000;
  const samplesPerShard = rows / 4;
  const extra = typeof ctx.flags['flag-args'] === 'string' ? ctx.flags['flag-args'].split(' ').filter(Boolean) : [];
  const rendered = await ensureRendered(IMAGES, ctx.log);
  const work = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-hostile-'));
  const server = fork(path.join(import.meta.dirname, 'fetch-hostile-server.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ready = once(server, (m) =>
      (m as FromHostile).type === 'ready' ? (m as Extract<FromHostile, { type: 'ready' }>) : undefined,
    );
    server.send({ type: 'start', dir: rendered.dir, images: IMAGES, rows } satisfies ToHostile);
    const { ports } = await ready;
    const names = new Map(
      Object.entries(ports).map(([name, port]) => [
        `${name === 'tls_hang' ? 'https' : 'http'}://127.0.0.1:${port}`,
        name,
      ]),
    );
    const parquets: Record<Corpus, string> = {
      clean: path.join(work, 'clean.parquet'),
      hostile: path.join(work, 'hostile.parquet'),
    };
    await writeCorpus(parquets.clean, rows, (i) => cleanUrl(i, ports as Record<OriginName, number>));
    await writeCorpus(parquets.hostile, rows, (i) => hostileUrl(i, ports as Record<OriginName, number>));
    ctx.log(
      `fetch-hostile: ${rows} rows in 4 shards, ${WORKERS} workers, default download flags${extra.length ? ` + ${extra.join(' ')}` : ''}`,
    );
    const runs: Array<Record<Corpus, FetchRun>> = [];
    for (let r = 0; r < ctx.runs; r++) {
      const order: Corpus[] = r % 2 ? ['hostile', 'clean'] : ['clean', 'hostile'];
      const got = {} as Record<Corpus, FetchRun>;
      for (const c of order) {
        const reset = once(server, (m) => ((m as FromHostile).type === 'reset_done' ? true : undefined));
        server.send({ type: 'reset' } satisfies ToHostile);
        await reset;
        got[c] = await fetchOnce(c, parquets[c], samplesPerShard, work, extra, names);
        const f = got[c];
        ctx.log(
          `  run ${r + 1} ${c}: ${f.rows_per_s} rows/s (${f.successes_per_s} ok/s), median ${f.median_rate}/s, worst 10 s ${f.worst_10s_rate}/s at ${f.worst_10s_at_s} s, wall ${f.wall_s} s`,
        );
      }
      runs.push(got);
    }
    const med = (f: (x: Record<Corpus, FetchRun>) => number) => round(median(runs.map(f)), 2);
    const ratios = {
      hostile_over_clean_rows_per_s: med((x) => x.hostile.rows_per_s / x.clean.rows_per_s),
      hostile_worst_10s_over_median: med((x) => x.hostile.worst_10s_rate / x.hostile.median_rate),
      hostile_wall_minus_clean_s: med((x) => x.hostile.wall_s - x.clean.wall_s),
    };
    const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
    const targets = {
      ...TARGETS,
      rows_per_s: verdict(ratios.hostile_over_clean_rows_per_s >= TARGETS.rows_per_s_ratio_min),
      no_stall: verdict(ratios.hostile_worst_10s_over_median >= TARGETS.worst_stretch_over_median_min),
      wall: verdict(ratios.hostile_wall_minus_clean_s <= TARGETS.wall_excess_max_s),
    };
    const col = (c: Corpus, f: (r: FetchRun) => number, d = 1) =>
      spread(
        runs.map((x) => f(x[c])),
        d,
      );
    const both = (f: (r: FetchRun) => number, d = 1) => [col('clean', f, d), col('hostile', f, d)];
    const expected = expectedCounts(rows);
    const last = runs[runs.length - 1].hostile;
    const table = [
      `${rows} rows, 4 shards, ${WORKERS} workers, default download flags${extra.length ? ` + \`${extra.join(' ')}\`` : ''}; median (min–max) of ${runs.length} run(s).`,
      '',
      markdownTable(
        ['', 'clean corpus', 'hostile corpus'],
        [
          ['rows finished/s (whole run)', ...both((r) => r.rows_per_s)],
          ['successes/s', ...both((r) => r.successes_per_s)],
          ['median of 1-s rates, rows/s', ...both((r) => r.median_rate)],
          ['slowest 10 s before the tail, rows/s', ...both((r) => r.worst_10s_rate)],
          ['wall s', ...both((r) => r.wall_s)],
          ['ok rows', ...both((r) => r.ok, 0)],
          ['peak RSS MB (largest process)', ...both((r) => r.peak_rss_mb, 0)],
        ],
      ),
      '',
      `Targets: hostile rows/s ≥ ${TARGETS.rows_per_s_ratio_min} × clean: ${targets.rows_per_s} (${ratios.hostile_over_clean_rows_per_s}); ` +
        `slowest 10 s before the tail ≥ ${TARGETS.worst_stretch_over_median_min} × median: ${targets.no_stall} (${ratios.hostile_worst_10s_over_median}); ` +
        `wall within ${TARGETS.wall_excess_max_s} s of clean: ${targets.wall} (+${ratios.hostile_wall_minus_clean_s} s).`,
      '',
      `Hostile corpus rows by kind: ${Object.entries(expected)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}. ` +
        `Last run's non-ok reasons: ${Object.entries(last.reasons)
          .flatMap(([s, byR]) => Object.entries(byR).map(([k, n]) => `${s} ${k} ${n}`))
          .join(', ')}. ` +
        `Origins cut off: ${(last.cut_origins as Array<{ name: string; rows_skipped: number }>).map((c) => `${c.name} (${c.rows_skipped} rows not requested)`).join(', ') || 'none'}.`,
    ].join('\n');
    return {
      config: {
        rows,
        samples_per_shard: samplesPerShard,
        workers: WORKERS,
        images: IMAGES,
        extra_flags: extra,
        expected_kinds: expected,
        tail_fraction: TAIL_FRACTION,
      },
      runs,
      medians: {
        clean_rows_per_s: med((x) => x.clean.rows_per_s),
        hostile_rows_per_s: med((x) => x.hostile.rows_per_s),
        clean_wall_s: med((x) => x.clean.wall_s),
        hostile_wall_s: med((x) => x.hostile.wall_s),
      },
      ratios,
      targets,
      notes: [
        'The servers run on the same 2 cores (their CPU is not counted); the machine is shared, so compare within a run.',
      ],
      table,
    };
  } finally {
    server.disconnect();
    await new Promise((ok) => (server.exitCode !== null ? ok(null) : server.once('exit', ok)));
    await rm(work, { recursive: true, force: true });
  }
}
