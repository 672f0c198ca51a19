/**
 * `npm run bench -- fetch [--runs N] [--quick]`: the real `muse-data fetch` command over HTTP and HTTPS against
 * a local server, and the image stage alone on the same images, in the same run.
 *
 * Workload: ~3,000 generated photo-like images (bench/fetch-data.ts; ~85% JPEG of 30–150 KB at 500–1000 px,
 * the rest PNG and WebP; 3% dead links answering 404, 2% slow links answering after 0.5–3 s), listed in a
 * LAION-schema parquet (URL, TEXT, WIDTH, HEIGHT, similarity) and served by bench/fetch-server.ts, a separate
 * process on 127.0.0.1 (HTTP, and HTTPS with a self-signed certificate made by `openssl req -x509` and trusted
 * by the fetch through NODE_EXTRA_CA_CERTS).
 *
 * Per run, in rotating order:
 * - fetch over HTTP and over HTTPS: `node bin/muse-data.js fetch --input <parquet> ... --workers 2
 *   --samples-per-shard 500 --image-size 256 --resize-mode center_crop --encode-format jpg --encode-quality 95
 *   --log-format json --out <tmp>` as a child process. Successes/s and peak RSS come from its JSON summary;
 *   CPU is the whole process tree's user+sys (the command and its worker processes), read from the cutime +
 *   cstime of this process around the child's lifetime (see `reapedChildrenCpuMs`). It includes start-up
 *   (node + tsx, three processes), which a separate tiny fetch measures so it can be shown apart.
 * - the same fetch command reading the same images from local files (an ImageNet-layout folder of symlinks,
 *   `--input-format imagenet`): everything but HTTP, so HTTP's share can be told apart.
 * - the image stage alone: the same non-dead images, from memory, through `createImageProcessor` with the
 *   same image settings, in 2 processes (one per core) at concurrency 8 each; CPU is those processes'
 *   user+sys over the processing window only.
 * The server's CPU is not counted in any figure; it is reported apart (it shares the 2 cores, though).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { DEFAULT_IMAGE } from '../src/pipeline/config.ts';
import type { ImageConfig } from '../src/pipeline/config-types.ts';
import type { ShardStats } from '../src/dataset/stats.ts';
import { cacheDir, catalog, ensureRendered, itemFile, type CatalogItem } from './fetch-data.ts';
import type { FromServer, ToServer } from './fetch-server.ts';
import type { FromImageStage, ToImageStage } from './fetch-image-stage.ts';
import {
  markdownTable,
  median,
  reapedChildrenCpuMs,
  round,
  spread,
  type BenchContext,
  type BenchReport,
} from './lib.ts';

const PROJECT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(PROJECT, 'bin', 'muse-data.js');
const HERE = import.meta.dirname;

/** img2dataset on this kind of machine and workload, as quoted by its users (not measured here). */
const REFERENCE = {
  source: 'img2dataset, as quoted by its users; not measured here',
  http_successes_per_s: 75,
  http_cpu_ms_per_success: 14.9,
  https_successes_per_s: 12,
};
const TARGETS = { http_successes_per_s_min: 150, https_successes_per_s_min: 150, cpu_ratio_max: 1.15 };

const IMAGE: ImageConfig = {
  ...DEFAULT_IMAGE,
  size: 256,
  resize_mode: 'center_crop',
  encode_format: 'jpg',
  encode_quality: 95,
};
export const WORKERS = 2;
const IMAGE_STAGE_PROCESSES = 2;
const IMAGE_STAGE_CONCURRENCY = 8;

type Source = 'http' | 'https' | 'local';

interface FetchRun {
  source: Source;
  wall_s: number;
  /** from the command's JSON summary */
  elapsed_s: number;
  successes: number;
  fallbacks: number;
  other: number;
  successes_per_s: number;
  cpu_ms: number;
  cpu_ms_per_success: number;
  /** CPU per success after subtracting the tiny fetch's fixed start-up CPU of the same run */
  cpu_ms_per_success_excl_startup: number;
  /** CPU s / wall s: how many of the 2 cores the command kept busy */
  cores_used: number;
  peak_rss_mb: number;
  server_cpu_ms: number;
  server_requests: number;
  /** connections the server accepted (TLS: handshakes): keep-alive reuse if far below requests */
  server_connections: number;
  /** per-row step times summed over rows (they overlap), from the shards' stats files */
  timings_ms: Record<string, number>;
  shard_durations_s: number[];
  problems: string[];
}

interface ImageRun {
  images: number;
  wall_ms: number;
  images_per_s: number;
  cpu_ms: number;
  cpu_ms_per_image: number;
  /** incl. process start-up and reading the files, from cutime/cstime */
  process_tree_cpu_ms: number;
  peak_rss_mb: number;
  failed: number;
  first_error?: string;
}

interface StartupRun {
  rows: number;
  wall_s: number;
  cpu_ms: number;
}

function once<T>(child: ChildProcess, pick: (m: unknown) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown) => {
      const v = pick(m);
      if (v !== undefined) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(v);
      }
    };
    const onExit = (code: number | null) =>
      reject(new Error(`${child.spawnfile} exited (code ${code}) before answering`));
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** A self-signed certificate for 127.0.0.1, made once per catalog version. */
export function ensureCertificate(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'bench-cert.pem');
  const key = path.join(dir, 'bench-key.pem');
  if (!existsSync(cert) || !existsSync(key)) {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-sha256',
        '-days',
        '3650',
        '-keyout',
        key,
        '-out',
        cert,
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
  }
  return { cert, key };
}

export async function writeParquet(file: string, items: CatalogItem[], origin: string): Promise<void> {
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'URL', type: 'STRING', data: items.map((it) => `${origin}/img/${it.index}.${it.format}`) },
      { name: 'TEXT', type: 'STRING', data: items.map((it) => it.caption) },
      { name: 'WIDTH', type: 'INT32', data: items.map((it) => it.width) },
      { name: 'HEIGHT', type: 'INT32', data: items.map((it) => it.height) },
      { name: 'similarity', type: 'DOUBLE', data: items.map((it) => 0.3 + ((it.seed % 1000) / 1000) * 0.1) },
    ],
    codec: 'SNAPPY',
    rowGroupSize: 1000,
  });
  await writeFile(file, new Uint8Array(buffer));
}

async function serverUsage(server: ChildProcess): Promise<{ cpuMs: number; requests: number; connections: number }> {
  const p = once(server, (m) =>
    (m as FromServer).type === 'usage' ? (m as Extract<FromServer, { type: 'usage' }>) : undefined,
  );
  server.send({ type: 'usage' } satisfies ToServer);
  return p;
}

/** Runs the real CLI as a child; returns its summary and the process tree's CPU. */
async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ summary: Record<string, any>; wall_s: number; cpu_ms: number; stderr: string }> {
  const cpu0 = reapedChildrenCpuMs();
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, 'fetch', ...args], {
    cwd: PROJECT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-20_000)));
  const code = await exited(child); // 'exit' comes after the child was reaped
  const wall_s = (performance.now() - t0) / 1000;
  const cpu_ms = reapedChildrenCpuMs() - cpu0;
  if (!child.stdout!.readableEnded) await new Promise((r) => child.stdout!.once('end', r));
  const last = stdout.trim().split('\n').pop() ?? '';
  let summary: Record<string, any>;
  try {
    summary = JSON.parse(last);
  } catch {
    throw new Error(`fetch exited with code ${code} without a JSON summary; stderr ends:\n${stderr.slice(-3000)}`);
  }
  if (code !== 0) throw new Error(`fetch exited with code ${code}; stderr ends:\n${stderr.slice(-3000)}`);
  return { summary, wall_s, cpu_ms, stderr };
}

/** Image and log flags every fetch bench run passes (fetch, fetch-hostile, queue). */
export const COMMON_ARGS = [
  '--image-size',
  '256',
  '--resize-mode',
  'center_crop',
  '--encode-format',
  'jpg',
  '--encode-quality',
  '95',
  '--log-format',
  'json',
];

/** The fetch flags for a bench corpus parquet (URL / TEXT columns, loopback origins, 2 workers). */
export function fetchArgs(parquet: string, samplesPerShard: number): string[] {
  return [
    '--input',
    parquet,
    '--input-format',
    'parquet',
    '--url-col',
    'URL',
    '--caption-col',
    'TEXT',
    '--allow-private-network',
    '--workers',
    String(WORKERS),
    '--samples-per-shard',
    String(samplesPerShard),
    ...COMMON_ARGS,
  ];
}

function localArgs(root: string, samplesPerShard: number): string[] {
  return [
    '--input',
    root,
    '--input-format',
    'imagenet',
    '--workers',
    String(WORKERS),
    '--samples-per-shard',
    String(samplesPerShard),
    ...COMMON_ARGS,
  ];
}

function readShardStats(out: string): ShardStats[] {
  const dir = path.join(out, 'shards');
  return readdirSync(dir)
    .filter((f) => f.endsWith('_stats.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as ShardStats);
}

async function fetchOnce(
  source: Source,
  args: string[],
  items: CatalogItem[],
  work: string,
  server: ChildProcess,
  env: NodeJS.ProcessEnv,
  startupCpuMs: number,
): Promise<FetchRun> {
  const out = await mkdtemp(path.join(work, `out-${source}-`));
  try {
    const s0 = await serverUsage(server);
    const { summary, wall_s, cpu_ms } = await runCli([...args, '--out', out], env);
    const s1 = await serverUsage(server);
    const stats = readShardStats(out);
    const timings: Record<string, number> = {};
    for (const st of stats) for (const [k, v] of Object.entries(st.timings_ms)) timings[k] = (timings[k] ?? 0) + v;
    const status = summary.status as Record<string, number>;
    const successes = status.ok;
    const problems: string[] = [];
    const expectOk = items.filter((it) => it.kind !== 'dead').length;
    const expectDead = source === 'local' ? 0 : items.length - expectOk;
    if (status.ok !== expectOk) problems.push(`${source}: expected ${expectOk} ok, got ${status.ok}`);
    if (status.fallback !== expectDead)
      problems.push(`${source}: expected ${expectDead} fallback (dead links), got ${status.fallback}`);
    if (summary.peak_rss_mb === undefined) problems.push('the fetch summary has no peak_rss_mb');
    return {
      source,
      wall_s: round(wall_s, 2),
      elapsed_s: summary.elapsed_s,
      successes,
      fallbacks: status.fallback,
      other: summary.rows - status.ok - status.fallback,
      successes_per_s: summary.successes_per_s,
      cpu_ms: Math.round(cpu_ms),
      cpu_ms_per_success: round(cpu_ms / successes, 2),
      cpu_ms_per_success_excl_startup: round((cpu_ms - startupCpuMs) / successes, 2),
      cores_used: round(cpu_ms / 1000 / wall_s, 2),
      peak_rss_mb: summary.peak_rss_mb ?? NaN,
      server_cpu_ms: Math.round(s1.cpuMs - s0.cpuMs),
      server_requests: s1.requests - s0.requests,
      server_connections: s1.connections - s0.connections,
      timings_ms: timings,
      shard_durations_s: stats.map((st) => st.duration_s),
      problems,
    };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** The live images as an ImageNet-layout folder of symlinks (one class), for the no-HTTP fetch. */
async function localTree(work: string, dir: string, items: CatalogItem[]): Promise<string> {
  const root = path.join(work, 'local');
  const cls = path.join(root, 'train', 'n00000000');
  await mkdir(cls, { recursive: true });
  for (const it of items) {
    if (it.kind === 'dead') continue;
    // the ImageNet reader lists .jpg/.jpeg/.png; WebP files go in as .jpg (the decoder looks at the bytes)
    await symlink(
      itemFile(dir, it),
      path.join(cls, `${String(it.index).padStart(5, '0')}.${it.format === 'png' ? 'png' : 'jpg'}`),
    );
  }
  return root;
}

/** The fixed cost of one fetch command: a 12-row fetch in 2 shards (so 2 workers start), over HTTP. */
async function startupOnce(parquet: string, work: string, env: NodeJS.ProcessEnv): Promise<StartupRun> {
  const out = await mkdtemp(path.join(work, 'out-startup-'));
  try {
    const { wall_s, cpu_ms } = await runCli([...fetchArgs(parquet, 6), '--out', out], env);
    return { rows: 12, wall_s: round(wall_s, 2), cpu_ms: Math.round(cpu_ms) };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

async function imageStageOnce(files: string[]): Promise<ImageRun> {
  const cpu0 = reapedChildrenCpuMs();
  const children = Array.from({ length: IMAGE_STAGE_PROCESSES }, () =>
    fork(path.join(HERE, 'fetch-image-stage.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  try {
    await Promise.all(
      children.map((c, k) => {
        const p = once(c, (m) => ((m as FromImageStage).type === 'loaded' ? true : undefined));
        const share = files.filter((_, i) => i % children.length === k);
        c.send({
          type: 'load',
          files: share,
          image: IMAGE,
          concurrency: IMAGE_STAGE_CONCURRENCY,
        } satisfies ToImageStage);
        return p;
      }),
    );
    const results = await Promise.all(
      children.map((c) => {
        const p = once(c, (m) =>
          (m as FromImageStage).type === 'result' ? (m as Extract<FromImageStage, { type: 'result' }>) : undefined,
        );
        c.send({ type: 'go' } satisfies ToImageStage);
        return p;
      }),
    );
    for (const c of children) c.disconnect();
    await Promise.all(children.map(exited));
    const images = results.reduce((n, r) => n + r.images, 0);
    const cpu = results.reduce((n, r) => n + r.cpuMs, 0);
    const wall = Math.max(...results.map((r) => r.wallMs));
    const firstError = results.find((r) => r.firstError)?.firstError;
    return {
      images,
      wall_ms: Math.round(wall),
      images_per_s: round((images * 1000) / wall, 1),
      cpu_ms: Math.round(cpu),
      cpu_ms_per_image: round(cpu / images, 2),
      process_tree_cpu_ms: Math.round(reapedChildrenCpuMs() - cpu0),
      peak_rss_mb: Math.round(Math.max(...results.map((r) => r.maxRssKb)) / 1024),
      failed: results.reduce((n, r) => n + r.failed, 0),
      ...(firstError ? { first_error: firstError } : {}),
    };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill();
  }
}

type Run = {
  run: number;
  order: string[];
  loadavg: number[];
  startup: StartupRun;
  image: ImageRun;
  http: FetchRun;
  https: FetchRun;
  local: FetchRun;
};

export async function benchFetch(ctx: BenchContext): Promise<BenchReport> {
  const count = ctx.quick ? 300 : 3000;
  // quick: enough shards for both workers to have work
  const samplesPerShard = ctx.quick ? 50 : 500;
  const noSlow = ctx.flags['no-slow'] === true;
  const items = catalog(count);
  const rendered = await ensureRendered(count, ctx.log);
  if (rendered.rendered) ctx.log(`rendered ${rendered.rendered} images in ${(rendered.ms / 1000).toFixed(0)} s`);
  const { cert, key } = ensureCertificate(cacheDir());
  const liveFiles = items.filter((it) => it.kind !== 'dead').map((it) => itemFile(rendered.dir, it));
  const liveBytes = liveFiles.reduce((n, f) => n + readFileSync(f).length, 0);
  const byFormat: Record<string, number> = {};
  for (const it of items) byFormat[it.format] = (byFormat[it.format] ?? 0) + 1;
  const jpegKb = items
    .filter((it) => it.format === 'jpg' && it.kind !== 'dead')
    .map((it) => readFileSync(itemFile(rendered.dir, it)).length / 1024);

  const work = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-fetch-'));
  const server = fork(path.join(HERE, 'fetch-server.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ready = once(server, (m) =>
      (m as FromServer).type === 'ready' ? (m as Extract<FromServer, { type: 'ready' }>) : undefined,
    );
    server.send({ type: 'start', dir: rendered.dir, count, cert, key, noSlow } satisfies ToServer);
    const ports = await ready;
    const parquets = {
      http: path.join(work, 'bench-http.parquet'),
      https: path.join(work, 'bench-https.parquet'),
      startup: path.join(work, 'bench-startup.parquet'),
    };
    await writeParquet(parquets.http, items, `http://127.0.0.1:${ports.http}`);
    await writeParquet(parquets.https, items, `https://127.0.0.1:${ports.https}`);
    await writeParquet(
      parquets.startup,
      items.filter((it) => it.kind === 'ok').slice(0, 12),
      `http://127.0.0.1:${ports.http}`,
    );
    const localRoot = await localTree(work, rendered.dir, items);
    const args: Record<Source, string[]> = {
      http: fetchArgs(parquets.http, samplesPerShard),
      https: fetchArgs(parquets.https, samplesPerShard),
      local: localArgs(localRoot, samplesPerShard),
    };
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_EXTRA_CA_CERTS: cert };

    ctx.log(
      `fetch bench: ${count} images (${liveFiles.length} live, ${(liveBytes / 2 ** 20).toFixed(1)} MiB), ${ctx.runs} run(s); server on :${ports.http} (http) and :${ports.https} (https)${noSlow ? '; slow links served at once (--no-slow)' : ''}`,
    );
    const runs: Run[] = [];
    const steps = ['image', 'http', 'https', 'local'] as const;
    for (let r = 0; r < ctx.runs; r++) {
      const order = [...steps.slice(r % steps.length), ...steps.slice(0, r % steps.length)];
      const loadavg = os.loadavg().map((x) => round(x, 2));
      const startup = await startupOnce(parquets.startup, work, env);
      ctx.log(
        `run ${r + 1}/${ctx.runs}: fetch start-up ${startup.cpu_ms} ms CPU, ${startup.wall_s} s (load ${loadavg.join(' ')})`,
      );
      const got: Partial<Run> = {};
      for (const step of order) {
        if (step === 'image') {
          got.image = await imageStageOnce(liveFiles);
          ctx.log(`  image stage: ${got.image.images_per_s} images/s, ${got.image.cpu_ms_per_image} ms CPU/image`);
        } else {
          const f = await fetchOnce(step, args[step], items, work, server, env, startup.cpu_ms);
          got[step] = f;
          ctx.log(
            `  ${step}: ${f.successes_per_s} successes/s, ${f.cpu_ms_per_success} ms CPU/success, ${f.cores_used} cores, peak RSS ${f.peak_rss_mb} MB, ` +
              `wall ${f.wall_s} s${f.problems.length ? ' PROBLEMS: ' + f.problems.join('; ') : ''}`,
          );
        }
      }
      runs.push({
        run: r + 1,
        order,
        loadavg,
        startup,
        image: got.image!,
        http: got.http!,
        https: got.https!,
        local: got.local!,
      });
    }

    const med = (f: (x: Run) => number) => round(median(runs.map(f)), 2);
    const fetchMedians = (k: Source) => ({
      successes_per_s: med((x) => x[k].successes_per_s),
      cpu_ms_per_success: med((x) => x[k].cpu_ms_per_success),
      cpu_ms_per_success_excl_startup: med((x) => x[k].cpu_ms_per_success_excl_startup),
      cores_used: med((x) => x[k].cores_used),
      peak_rss_mb: med((x) => x[k].peak_rss_mb),
      wall_s: med((x) => x[k].wall_s),
      server_connections: med((x) => x[k].server_connections),
      server_cpu_ms_per_request: med((x) => x[k].server_cpu_ms / x[k].server_requests),
    });
    const medians = {
      image: {
        images_per_s: med((x) => x.image.images_per_s),
        cpu_ms_per_image: med((x) => x.image.cpu_ms_per_image),
        cores_used: med((x) => x.image.cpu_ms / x.image.wall_ms),
        peak_rss_mb: med((x) => x.image.peak_rss_mb),
      },
      http: fetchMedians('http'),
      https: fetchMedians('https'),
      local: fetchMedians('local'),
      startup_cpu_ms: med((x) => x.startup.cpu_ms),
      startup_wall_s: med((x) => x.startup.wall_s),
    };
    // CPU per success split into parts, each a difference of two measurements of the same run
    const breakdown = (x: Run) => {
      const n = x.local.successes;
      const startup = x.startup.cpu_ms / n;
      const image = x.image.cpu_ms_per_image;
      return {
        image_stage: image,
        startup,
        pipeline_without_http: x.local.cpu_ms_per_success - startup - image,
        http_client: x.http.cpu_ms_per_success - x.local.cpu_ms_per_success,
        tls: x.https.cpu_ms_per_success - x.http.cpu_ms_per_success,
      };
    };
    const parts = ['image_stage', 'startup', 'pipeline_without_http', 'http_client', 'tls'] as const;
    const cpuBreakdown = Object.fromEntries(parts.map((p) => [p, med((x) => breakdown(x)[p])]));
    // paired ratios (same run), then their median
    const ratios = {
      http_cpu_per_success_over_image_cpu_per_image: med((x) => x.http.cpu_ms_per_success / x.image.cpu_ms_per_image),
      https_cpu_per_success_over_image_cpu_per_image: med((x) => x.https.cpu_ms_per_success / x.image.cpu_ms_per_image),
      local_cpu_per_success_over_image_cpu_per_image: med((x) => x.local.cpu_ms_per_success / x.image.cpu_ms_per_image),
      http_excl_startup_over_image: med((x) => x.http.cpu_ms_per_success_excl_startup / x.image.cpu_ms_per_image),
      https_excl_startup_over_image: med((x) => x.https.cpu_ms_per_success_excl_startup / x.image.cpu_ms_per_image),
      https_over_http_cpu: med((x) => x.https.cpu_ms_per_success / x.http.cpu_ms_per_success),
      https_over_http_successes_per_s: med((x) => x.https.successes_per_s / x.http.successes_per_s),
      http_successes_per_s_over_image_images_per_s: med((x) => x.http.successes_per_s / x.image.images_per_s),
      https_successes_per_s_over_image_images_per_s: med((x) => x.https.successes_per_s / x.image.images_per_s),
      local_successes_per_s_over_image_images_per_s: med((x) => x.local.successes_per_s / x.image.images_per_s),
      http_successes_per_s_over_img2dataset_reference: round(
        medians.http.successes_per_s / REFERENCE.http_successes_per_s,
        2,
      ),
      https_successes_per_s_over_img2dataset_reference: round(
        medians.https.successes_per_s / REFERENCE.https_successes_per_s,
        2,
      ),
      http_cpu_per_success_over_img2dataset_reference: round(
        medians.http.cpu_ms_per_success / REFERENCE.http_cpu_ms_per_success,
        2,
      ),
    };
    const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
    const targets = {
      ...TARGETS,
      http_successes_per_s: verdict(medians.http.successes_per_s >= TARGETS.http_successes_per_s_min),
      https_successes_per_s: verdict(medians.https.successes_per_s >= TARGETS.https_successes_per_s_min),
      http_cpu_ratio: verdict(ratios.http_cpu_per_success_over_image_cpu_per_image <= TARGETS.cpu_ratio_max),
      https_cpu_ratio: verdict(ratios.https_cpu_per_success_over_image_cpu_per_image <= TARGETS.cpu_ratio_max),
    };

    const col = (f: (x: Run) => number, d = 1) => spread(runs.map(f), d);
    const fetchCol = (k: Source, f: (r: FetchRun, x: Run) => number, d = 1) => col((x) => f(x[k], x), d);
    const three = (f: (r: FetchRun, x: Run) => number, d = 1) =>
      (['http', 'https', 'local'] as const).map((k) => fetchCol(k, f, d));
    const table = [
      `${count} URLs (${liveFiles.length} live images, ${items.length - liveFiles.length} dead links, ` +
        `${items.filter((it) => it.kind === 'slow').length} slow links${noSlow ? ' served without delay' : ''}), ${WORKERS} workers, ` +
        `256 px centre crop → JPEG q95; median (min–max) of ${runs.length} run(s). Ratios are per run, then the median.`,
      '',
      markdownTable(
        [
          '',
          'fetch, HTTP',
          'fetch, HTTPS',
          'fetch, local files (no HTTP)',
          'image stage alone',
          'img2dataset HTTP (reference, not measured here)',
          'img2dataset HTTPS (reference)',
        ],
        [
          [
            'successes/s (image stage: images/s)',
            ...three((r) => r.successes_per_s),
            col((x) => x.image.images_per_s),
            REFERENCE.http_successes_per_s,
            REFERENCE.https_successes_per_s,
          ],
          [
            'CPU ms per success (image stage: per image)',
            ...three((r) => r.cpu_ms_per_success, 2),
            col((x) => x.image.cpu_ms_per_image, 2),
            REFERENCE.http_cpu_ms_per_success,
            '–',
          ],
          [
            'CPU ratio to the image stage (target ≤ 1.15)',
            ...three((r, x) => r.cpu_ms_per_success / x.image.cpu_ms_per_image, 2),
            '1',
            '–',
            '–',
          ],
          [
            '… same, without the fixed start-up CPU',
            ...three((r, x) => r.cpu_ms_per_success_excl_startup / x.image.cpu_ms_per_image, 2),
            '1',
            '–',
            '–',
          ],
          [
            'cores kept busy (CPU s / wall s, of 2)',
            ...three((r) => r.cores_used, 2),
            col((x) => x.image.cpu_ms / x.image.wall_ms, 2),
            '–',
            '–',
          ],
          [
            'peak RSS MB (largest process)',
            ...three((r) => r.peak_rss_mb, 0),
            col((x) => x.image.peak_rss_mb, 0),
            '–',
            '–',
          ],
          ['wall s (whole command)', ...three((r) => r.wall_s), col((x) => x.image.wall_ms / 1000), '–', '–'],
          [
            'connections opened (requests: ' + count + ')',
            fetchCol('http', (r) => r.server_connections, 0),
            fetchCol('https', (r) => r.server_connections, 0),
            '–',
            '–',
            '–',
            '–',
          ],
          [
            'server CPU ms per request (not counted above)',
            fetchCol('http', (r) => r.server_cpu_ms / r.server_requests, 2),
            fetchCol('https', (r) => r.server_cpu_ms / r.server_requests, 2),
            '–',
            '–',
            '–',
            '–',
          ],
        ],
      ),
      '',
      `Targets: ≥ ${TARGETS.http_successes_per_s_min} successes/s over HTTP: ${targets.http_successes_per_s}; over HTTPS: ${targets.https_successes_per_s}; ` +
        `CPU per success ≤ ${TARGETS.cpu_ratio_max}× the image stage: HTTP ${targets.http_cpu_ratio} (${ratios.http_cpu_per_success_over_image_cpu_per_image}), HTTPS ${targets.https_cpu_ratio} (${ratios.https_cpu_per_success_over_image_cpu_per_image}).`,
      '',
      'Where the CPU of one success goes (ms; each part a difference of two measurements of the same run, median over runs):',
      '',
      markdownTable(
        ['part', 'ms per success', 'measured as'],
        [
          [
            'image stage (header check, decode+resize, dHash, encode, sha256)',
            cpuBreakdown.image_stage.toFixed(2),
            'image stage alone',
          ],
          [
            'fixed start-up of a fetch command (node + tsx + modules, 3 processes)',
            cpuBreakdown.startup.toFixed(2),
            `12-row fetch (${col((x) => x.startup.cpu_ms, 0)} ms CPU) / successes`,
          ],
          [
            'rest of the pipeline without HTTP (source, tar, manifest, scheduling, GC)',
            cpuBreakdown.pipeline_without_http.toFixed(2),
            'local-files fetch − start-up − image stage',
          ],
          [
            'HTTP client (undici, sockets, body, dead links)',
            cpuBreakdown.http_client.toFixed(2),
            'HTTP fetch − local-files fetch',
          ],
          ['TLS', cpuBreakdown.tls.toFixed(2), 'HTTPS fetch − HTTP fetch'],
        ],
      ),
    ].join('\n');

    const problems = runs.flatMap((x) => [
      ...x.http.problems,
      ...x.https.problems,
      ...x.local.problems,
      ...(x.image.failed ? [`image stage: ${x.image.failed} failed (${x.image.first_error})`] : []),
    ]);
    return {
      config: {
        images: count,
        live_images: liveFiles.length,
        dead_links: items.filter((it) => it.kind === 'dead').length,
        slow_links: items.filter((it) => it.kind === 'slow').length,
        slow_links_delayed: !noSlow,
        by_format: byFormat,
        live_bytes: liveBytes,
        jpeg_kb: {
          min: round(Math.min(...jpegKb), 0),
          median: round(median(jpegKb), 0),
          max: round(Math.max(...jpegKb), 0),
        },
        catalog_cache: rendered.dir,
        workers: WORKERS,
        samples_per_shard: samplesPerShard,
        image: IMAGE,
        image_stage: { processes: IMAGE_STAGE_PROCESSES, concurrency_per_process: IMAGE_STAGE_CONCURRENCY },
        fetch_command: `node bin/muse-data.js fetch ${fetchArgs('<parquet>', samplesPerShard).join(' ')} --out <tmp>`,
        local_command: `node bin/muse-data.js fetch ${localArgs('<folder of symlinks>', samplesPerShard).join(' ')} --out <tmp>`,
        quick: ctx.quick,
      },
      runs,
      medians: { ...medians, cpu_breakdown_ms_per_success: cpuBreakdown },
      ratios,
      reference: REFERENCE,
      targets,
      notes: [
        'CPU of a fetch = user+sys of the command and its worker processes (cutime+cstime of the bench process across the child), start-up included.',
        'CPU of the image stage = user+sys of its 2 processes over the processing window only (images already in memory).',
        'The local server runs on the same 2 cores; its CPU is not counted but it slows wall time, most over HTTPS.',
        'The machine is shared with other jobs: throughput and even CPU time vary run to run; compare ratios within a run.',
        ...(problems.length ? [`PROBLEMS: ${problems.join('; ')}`] : []),
      ],
      table,
    };
  } finally {
    server.disconnect();
    await exited(server);
    await rm(work, { recursive: true, force: true });
  }
}
