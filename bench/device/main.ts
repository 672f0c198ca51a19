/**
 * The GPU-day benchmark: what a bare NVIDIA machine (the device tool) gives the project, in one run of a few
 * minutes. Parts, each in its own process (a tfjs backend cannot be switched cleanly, and the wasm thread pool
 * is fixed when the module starts):
 *   probe            the webgpu adapter Dawn finds (vendor, architecture, driver description, limits, features)
 *   transformer-*    the MUSE transformer training step (hidden 512, 8 layers, batch 16, 256 image tokens) on
 *                    webgpu and on the same machine's CPU (wasm, every core)
 *   vqgan-*          the reference f16 VQGAN encoding 256 px images, on webgpu and on wasm (every core)
 * A part that runs past its share of the time budget is stopped; the samples it measured so far are kept.
 * Writes device.json (into --out, default $OUT, else bench/results/) and prints a table.
 *
 *   node --import tsx bench/device/main.ts [--dry-run] [--out DIR] [--budget-s 420]
 *
 * --dry-run: tiny sizes (seconds on a software adapter such as lavapipe), so the script is exercised in the
 * test suite (test/bench/device.test.ts) and cannot rot. On the device machine it runs from the bundle that
 * bench/device/pack.ts makes (see bench/README.md, "GPU day").
 */
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../../src/runtime/backend.ts';
import { findAdapter } from '../../src/runtime/webgpu.ts';
import { benchTransformer } from '../models-transformer.ts';
import { benchVqgan } from '../models-vqgan.ts';

type Backend = 'webgpu' | 'wasm';
interface Part {
  name: string;
  kind: 'probe' | 'transformer' | 'vqgan';
  backend: Backend;
  limitS: number;
}
interface Sizes {
  transformer: { hidden: number; layers: number; heads: number; batch: number; warmup: number; steps: number };
  vqgan: { resolution: number; batch: number; repeats: number; config: Record<string, unknown> };
}
type ChildMessage =
  { type: 'sample'; kind: string; ms: number } | { type: 'result'; result: unknown } | { type: 'error'; error: string };

const FULL: Sizes = {
  transformer: { hidden: 512, layers: 8, heads: 8, batch: 16, warmup: 1, steps: 3 },
  vqgan: { resolution: 256, batch: 4, repeats: 3, config: {} },
};
const DRY: Sizes = {
  transformer: { hidden: 32, layers: 1, heads: 2, batch: 2, warmup: 0, steps: 1 },
  vqgan: {
    resolution: 32,
    batch: 1,
    repeats: 1,
    config: {
      hiddenChannels: 32,
      channelMult: [1, 2],
      numResBlocks: 1,
      zChannels: 32,
      quantizedEmbedDim: 32,
      numEmbeddings: 64,
    },
  },
};

// Time caps in seconds, in the order run. The CPU transformer goes last: it is the slowest and the most
// likely to be cut short. The caps sum to the default budget (7 minutes: the device tool's run of the whole
// script, with unpacking, stays under 8).
const PARTS: Part[] = [
  { name: 'probe', kind: 'probe', backend: 'webgpu', limitS: 30 },
  { name: 'transformer-webgpu', kind: 'transformer', backend: 'webgpu', limitS: 90 },
  { name: 'vqgan-webgpu', kind: 'vqgan', backend: 'webgpu', limitS: 60 },
  { name: 'vqgan-wasm', kind: 'vqgan', backend: 'wasm', limitS: 90 },
  { name: 'transformer-wasm', kind: 'transformer', backend: 'wasm', limitS: 150 },
];

/** The wasm backend with every core the OS gives the process (the threaded SIMD build). */
async function startBackend(backend: Backend) {
  return initBackend(backend, { quiet: true, wasmThreads: backend === 'wasm' ? os.availableParallelism() : 1 });
}

/** What Dawn says about the adapter: GPUAdapterInfo's fields are getters, so they are read by name. */
async function probe(): Promise<Record<string, unknown>> {
  const choice = await startBackend('webgpu');
  const { adapter } = await findAdapter(true);
  const info = (adapter.info ?? {}) as Record<string, unknown>;
  const raw = Object.fromEntries(
    ['vendor', 'architecture', 'device', 'description', 'subgroupMinSize', 'subgroupMaxSize', 'isFallbackAdapter']
      .filter((k) => info[k] !== undefined)
      .map((k) => [k, info[k]]),
  );
  const features = [...(adapter.features as unknown as Iterable<string>)].sort();
  return { backend: choice.name, adapter: choice.adapter, info: raw, features };
}

async function runChild(part: Part, sizes: Sizes, send: (m: ChildMessage) => void): Promise<unknown> {
  if (part.kind === 'probe') return probe();
  const choice = await startBackend(part.backend);
  const meta = { backend: choice.name, threads: choice.threads, adapter: choice.adapter?.description };
  if (part.kind === 'transformer') {
    const t = sizes.transformer;
    const r = await benchTransformer(part.backend, {
      ...t,
      onSample: (kind, ms) => send({ type: 'sample', kind, ms }),
    });
    return { ...meta, ...r };
  }
  const v = sizes.vqgan;
  const r = (await benchVqgan({
    backends: [part.backend],
    resolution: v.resolution,
    batch: v.batch,
    repeats: v.repeats,
    config: v.config,
  })) as { results: unknown[] };
  return { ...meta, ...(r.results[0] as object) };
}

interface PartOutcome {
  name: string;
  ok: boolean;
  seconds: number;
  result?: unknown;
  error?: string;
  timedOut?: boolean;
  samples?: Record<string, number[]>;
}

function runPart(part: Part, sizes: Sizes, limitS: number): Promise<PartOutcome> {
  const t0 = performance.now();
  const samples: Record<string, number[]> = {};
  return new Promise((resolve) => {
    const child = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify({ part, sizes })], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let outcome: Omit<PartOutcome, 'name' | 'seconds'> | undefined;
    const timer = setTimeout(() => {
      outcome = { ok: false, timedOut: true, error: `stopped after ${limitS} s` };
      child.kill('SIGKILL');
    }, limitS * 1000);
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'sample') (samples[m.kind] ??= []).push(Math.round(m.ms));
      else if (m.type === 'result') outcome = { ok: true, result: m.result };
      else outcome = { ok: false, error: m.error };
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      const o = outcome ?? { ok: false, error: `process exited (code ${code}, signal ${signal}) without a result` };
      resolve({ name: part.name, seconds, ...o, ...(!o.ok && Object.keys(samples).length ? { samples } : {}) });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** The step / encode figures of a part, from its result or, when it was cut short, from its samples. */
function figure(o: PartOutcome | undefined, kind: 'transformer' | 'vqgan'): number | undefined {
  if (!o) return undefined;
  const r = o.result as Record<string, any> | undefined;
  if (kind === 'transformer')
    return r?.trainStep?.msPerStep ?? (o.samples?.train ? median(o.samples.train) : undefined);
  return r?.imagesPerSec;
}

export interface DeviceReport {
  dryRun: boolean;
  machine: Record<string, unknown>;
  sizes: Sizes;
  parts: PartOutcome[];
  summary: Record<string, number | string | undefined>;
}

export async function runDeviceBench(opts: {
  dryRun: boolean;
  budgetS: number;
  log: (m: string) => void;
}): Promise<DeviceReport> {
  const sizes = opts.dryRun ? DRY : FULL;
  const start = performance.now();
  const parts: PartOutcome[] = [];
  for (const part of PARTS) {
    const left = opts.budgetS - (performance.now() - start) / 1000;
    if (left < 5) {
      parts.push({ name: part.name, ok: false, seconds: 0, error: 'not run: the time budget was spent' });
      continue;
    }
    const limit = Math.min(part.limitS * (opts.budgetS / 420), left);
    opts.log(`${part.name}: running (at most ${Math.round(limit)} s)`);
    const o = await runPart(part, sizes, limit);
    opts.log(`${part.name}: ${o.ok ? 'done' : o.error} in ${o.seconds} s`);
    parts.push(o);
  }
  const by = (n: string) => parts.find((p) => p.name === n);
  const gpuStep = figure(by('transformer-webgpu'), 'transformer');
  const cpuStep = figure(by('transformer-wasm'), 'transformer');
  const gpuImg = figure(by('vqgan-webgpu'), 'vqgan');
  const cpuImg = figure(by('vqgan-wasm'), 'vqgan');
  const probeResult = by('probe')?.result as
    { adapter?: { description?: string; vendor?: string; architecture?: string; software?: boolean } } | undefined;
  const ratio = (a?: number, b?: number) => (a && b ? Math.round((a / b) * 100) / 100 : undefined);
  return {
    dryRun: opts.dryRun,
    machine: {
      cpus: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
      vulkanDriverFiles: process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES,
    },
    sizes,
    parts,
    summary: {
      adapter: probeResult?.adapter
        ? `${probeResult.adapter.description} (vendor ${probeResult.adapter.vendor}, ${probeResult.adapter.software ? 'software' : 'hardware'})`
        : by('probe')?.error,
      transformerStepMsWebgpu: gpuStep,
      transformerStepMsWasm: cpuStep,
      transformerWebgpuSpeedup: ratio(cpuStep, gpuStep),
      vqganImagesPerSecWebgpu: gpuImg,
      vqganImagesPerSecWasm: cpuImg,
      vqganWebgpuSpeedup: ratio(gpuImg, cpuImg),
      totalSeconds: Math.round((performance.now() - start) / 1000),
    },
  };
}

function table(r: DeviceReport): string {
  const rows = Object.entries(r.summary).map(([k, v]) => `| ${k} | ${v ?? 'n/a'} |`);
  return ['| measure | value |', '| --- | ---: |', ...rows].join('\n');
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv.includes('--child')) {
  const { part, sizes } = JSON.parse(arg('--child')!) as { part: Part; sizes: Sizes };
  const send = (m: ChildMessage) => process.send!(m);
  try {
    const result = await runChild(part, sizes, send);
    process.send!({ type: 'result', result } satisfies ChildMessage, () => process.exit(0));
  } catch (err) {
    process.send!({ type: 'error', error: (err as Error).stack ?? String(err) } satisfies ChildMessage, () =>
      process.exit(1),
    );
  }
} else if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dryRun = process.argv.includes('--dry-run');
  const budgetS = Number(arg('--budget-s') ?? 420);
  if (!(budgetS > 0)) throw new Error(`--budget-s: expected a positive number of seconds, got '${arg('--budget-s')}'`);
  const outDir =
    arg('--out') ?? process.env.OUT ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'results');
  const log = (m: string) => process.stderr.write(`[device] ${m}\n`);
  const report = await runDeviceBench({ dryRun, budgetS, log });
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, dryRun ? 'device.dry-run.json' : 'device.json');
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  console.log(table(report));
  console.log(`written: ${file}`);
}
