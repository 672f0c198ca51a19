/**
 * `npm run bench -- queue [--runs N] [--quick]`: the fetch benchmark's corpus (bench/fetch-data.ts, served over
 * HTTP by bench/fetch-server.ts on 127.0.0.1) fetched three ways, in rotating order within each run:
 * - `fetch --workers 2`: the local worker pool (the baseline);
 * - `fetch --queue` with 1 `muse-data worker` process (concurrency 2);
 * - `fetch --queue` with 2 `muse-data worker` processes (concurrency 2 each), against a redis-server started here.
 * The workers are started (and connected) before the timed fetch, as on a cluster where they wait for work; the
 * `--workers 2` figure includes starting its two worker processes. Every output is checked byte-identical to the
 * baseline's. Queue overhead per shard = (queue wall - baseline wall) / shards.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cacheDir, catalog, ensureRendered } from './fetch-data.ts';
import { COMMON_ARGS, ensureCertificate, writeParquet } from './fetch.ts';
import type { FromServer, ToServer } from './fetch-server.ts';
import { markdownTable, median, round, type BenchContext, type BenchReport } from './lib.ts';
import { startRedis } from '../test/helpers/redis.ts';

const PROJECT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(PROJECT, 'bin', 'muse-data.js');
const ARGS = ['--url-col', 'URL', '--caption-col', 'TEXT', '--allow-private-network', ...COMMON_ARGS];
type Mode = 'workers2' | 'queue1' | 'queue2';

function exited(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((r) => c.once('exit', (code) => r(code)));
}

async function fetchCli(args: string[]): Promise<{ summary: Record<string, any>; wall_s: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, 'fetch', ...args], { cwd: PROJECT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-5000)));
  const code = await exited(child);
  const wall_s = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`fetch exited ${code}: ${stderr}`);
  return { summary: JSON.parse(stdout.trim().split('\n').pop()!), wall_s };
}

function startWorkers(n: number, url: string): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ChildProcess>((resolve, reject) => {
          const c = spawn(process.execPath, [BIN, 'worker', '--queue', url, '--concurrency', '2', '--kinds', 'fetch'], {
            cwd: PROJECT,
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let err = '';
          c.stderr!.on('data', (d) => {
            err += d;
            if (/taking fetch/.test(err)) resolve(c);
          });
          c.once('exit', (code) => reject(new Error(`worker exited ${code}: ${err}`)));
        }),
    ),
  );
}

const shardBytes = (out: string) => {
  const dir = path.join(out, 'shards');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.tar') || f.endsWith('.arrow'))
    .sort()
    .map((f) => readFileSync(path.join(dir, f)));
};

export async function benchQueue(ctx: BenchContext): Promise<BenchReport> {
  const count = ctx.quick ? 300 : 3000;
  const samplesPerShard = ctx.quick ? 50 : 250;
  const items = catalog(count);
  const rendered = await ensureRendered(count, ctx.log);
  const work = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-queue-'));
  const redis = await startRedis();
  const server = fork(path.join(import.meta.dirname, 'fetch-server.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ports = await new Promise<Extract<FromServer, { type: 'ready' }>>((resolve) => {
      server.on('message', (m: FromServer) => m.type === 'ready' && resolve(m));
      // only HTTP is used here; the server starts HTTPS too, with the fetch bench's certificate
      server.send({ type: 'start', dir: rendered.dir, count, ...ensureCertificate(cacheDir()) } satisfies ToServer);
    });
    const parquet = path.join(work, 'bench.parquet');
    await writeParquet(parquet, items, `http://127.0.0.1:${ports.http}`);
    const base = [
      '--input',
      parquet,
      '--input-format',
      'parquet',
      '--samples-per-shard',
      String(samplesPerShard),
      ...ARGS,
    ];
    const shards = Math.ceil(count / samplesPerShard);
    ctx.log(`queue bench: ${count} images in ${shards} shards, ${ctx.runs} run(s); redis ${redis.url}`);
    const modes: Mode[] = ['workers2', 'queue1', 'queue2'];
    type One = { successes_per_s: number; wall_s: number; elapsed_s: number; ok: number; worker_start_s: number };
    const runs: Array<Record<Mode, One> & { identical: boolean }> = [];
    for (let r = 0; r < ctx.runs; r++) {
      const order = [...modes.slice(r % 3), ...modes.slice(0, r % 3)];
      const got: Record<string, One> = {};
      const bytes: Record<string, Buffer[]> = {};
      for (const mode of order) {
        const out = path.join(work, `out-${r}-${mode}`);
        let workers: ChildProcess[] = [];
        try {
          const t0 = performance.now();
          if (mode !== 'workers2') workers = await startWorkers(mode === 'queue1' ? 1 : 2, redis.url);
          const worker_start_s = round((performance.now() - t0) / 1000, 2);
          const extra = mode === 'workers2' ? ['--workers', '2'] : ['--queue', redis.url];
          const { summary, wall_s } = await fetchCli([
            ...base,
            ...extra,
            '--out',
            out,
            '--data-root',
            path.join(work, `root-${r}-${mode}`),
          ]);
          got[mode] = {
            successes_per_s: summary.successes_per_s,
            wall_s: round(wall_s, 2),
            elapsed_s: summary.elapsed_s,
            ok: summary.status.ok,
            worker_start_s,
          };
          bytes[mode] = shardBytes(out);
          ctx.log(
            `  run ${r + 1} ${mode}: ${summary.successes_per_s} successes/s, wall ${round(wall_s, 2)} s${workers.length ? ` (+ ${worker_start_s} s starting the workers)` : ''}`,
          );
        } finally {
          for (const w of workers) w.kill('SIGTERM');
          await Promise.all(workers.map(exited));
          await rm(out, { recursive: true, force: true });
        }
      }
      const same = (a: Buffer[], b: Buffer[]) => a.length === b.length && a.every((x, i) => x.equals(b[i]));
      runs.push({
        ...(got as Record<Mode, One>),
        identical: same(bytes.workers2, bytes.queue1) && same(bytes.workers2, bytes.queue2),
      });
    }
    const med = (f: (x: (typeof runs)[number]) => number) => round(median(runs.map(f)), 2);
    const medians = {
      workers2: { successes_per_s: med((x) => x.workers2.successes_per_s), wall_s: med((x) => x.workers2.wall_s) },
      queue1: { successes_per_s: med((x) => x.queue1.successes_per_s), wall_s: med((x) => x.queue1.wall_s) },
      queue2: { successes_per_s: med((x) => x.queue2.successes_per_s), wall_s: med((x) => x.queue2.wall_s) },
      queue2_wall_incl_worker_start_s: med((x) => x.queue2.wall_s + x.queue2.worker_start_s),
    };
    const ratios = {
      queue2_vs_workers2_successes: med((x) => x.queue2.successes_per_s / x.workers2.successes_per_s),
      queue2_overhead_s_per_shard: med((x) => (x.queue2.wall_s - x.workers2.wall_s) / shards),
      // the same, counting the queue workers' start-up as --workers 2 counts its worker processes'
      queue2_overhead_incl_worker_start_s_per_shard: med(
        (x) => (x.queue2.wall_s + x.queue2.worker_start_s - x.workers2.wall_s) / shards,
      ),
      queue1_vs_workers2_successes: med((x) => x.queue1.successes_per_s / x.workers2.successes_per_s),
    };
    const table =
      markdownTable(
        ['mode', 'successes/s (median)', 'wall s (median)', 'vs --workers 2'],
        [
          ['`fetch --workers 2`', medians.workers2.successes_per_s, medians.workers2.wall_s, '1.00'],
          [
            '`fetch --queue`, 1 worker process',
            medians.queue1.successes_per_s,
            medians.queue1.wall_s,
            ratios.queue1_vs_workers2_successes.toFixed(2),
          ],
          [
            '`fetch --queue`, 2 worker processes',
            medians.queue2.successes_per_s,
            medians.queue2.wall_s,
            ratios.queue2_vs_workers2_successes.toFixed(2),
          ],
        ],
      ) +
      `\n\nqueue overhead per shard (2 workers vs --workers 2): ${ratios.queue2_overhead_s_per_shard} s, ` +
      `${ratios.queue2_overhead_incl_worker_start_s_per_shard} s counting the workers' start-up ` +
      `(2 workers through the queue incl. their start: ${medians.queue2_wall_incl_worker_start_s} s wall); outputs byte-identical in every run: ${runs.every((x) => x.identical)}`;
    return {
      config: { images: count, samples_per_shard: samplesPerShard, shards, worker_concurrency: 2, image_size: 256 },
      runs,
      medians,
      ratios,
      targets: { queue2_vs_workers2_successes_min: 0.97 },
      table,
    };
  } finally {
    server.kill();
    await redis.stop();
    await rm(work, { recursive: true, force: true });
  }
}
