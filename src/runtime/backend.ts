// Choose the TensorFlow.js backend. 'auto' order: the native TensorFlow build when it is a CUDA build that saw a
// GPU, webgpu on a hardware adapter, the native CPU build, wasm, pure-JS cpu. The native build is the project's
// own (`npm run build:tensorflow`, see tensorflow/build.ts); without it 'tensorflow' is unavailable and says
// how to build it. A software webgpu adapter (lavapipe) is used only when 'webgpu' is asked for by name.
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { registerCpuKernelFixes } from './cpu-kernels/resize-nearest-grad.ts';
import { registerWasmKernels } from './wasm-kernels/index.ts';
import { prepareThreadedWasm, unrefWasmWorkers, wasmThreadCount, withCoreCount } from './wasm-threads.ts';
import { BackendUnavailableError } from './errors.ts';
import { NoAdapterError, describeAdapter, setWebgpuBackend, type AdapterSummary } from './webgpu.ts';
import { readBuildInfo, type BuildInfo } from './tensorflow/build-dir.ts';
import { registerTensorflowBackend, shareTensorflowThreads } from './tensorflow/load.ts';

export { tf, BackendUnavailableError, shareTensorflowThreads };

export type BackendName = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

export interface BackendChoice {
  /** The backend actually in use (`tf.getBackend()`): 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  name: string;
  /** Candidates that were tried and failed, each with the reason. */
  tried: string[];
  /** On webgpu: the adapter in use (vendor, architecture, software or not, limits). */
  adapter?: AdapterSummary;
  /** On wasm: the threads of its thread pool (1: single-thread build); on tensorflow: its intra-op pool. */
  threads?: number;
  /** On tensorflow: the native build in use (TensorFlow version, CUDA or CPU, devices seen at build time). */
  native?: BuildInfo;
}

export { wasmThreadCount };

// The cpu backend is always there (and used as the reference in tests): fix its known-bad kernels up front.
registerCpuKernelFixes();

let current: { requested: BackendName; choice: BackendChoice } | undefined;
let pending: Promise<BackendChoice> | undefined;

function errorText(err: unknown): string {
  if (err instanceof NoAdapterError) return err.message; // says how to get an adapter: keep it whole
  const code = (err as { code?: string } | null)?.code;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return 'not installed';
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0].slice(0, 200);
}

/** Whether a native build runs on a GPU: a CUDA build that saw one when it was built. */
const usesGpu = (info: BuildInfo) => info.cuda && info.devices.some((d) => /GPU/.test(d));

/**
 * Starts the native TensorFlow build. `slot` is its place in the 'auto' order: 'gpu' takes a CUDA build that saw
 * a GPU, 'cpu' any other build; 'any' (an explicit --backend tensorflow) takes whatever is built.
 */
async function tryNative(slot: 'gpu' | 'cpu' | 'any'): Promise<void> {
  const { info, missing } = readBuildInfo();
  if (!info) throw new Error(missing);
  if (slot === 'gpu' && !usesGpu(info))
    throw new Error(
      info.cuda ? 'the CUDA build saw no GPU when it was built' : `the build is CPU-only (${info.distribution})`,
    );
  if (slot === 'cpu' && usesGpu(info)) throw new Error('the build is the CUDA one, tried first');
  registerTensorflowBackend();
  if (!(await tf.setBackend('tensorflow')))
    throw new Error("the native build loaded but the 'tensorflow' backend did not initialise");
}

let wasmPrepared = false;
/** Threads of the wasm backend once it started (1: the single-thread SIMD build). */
let wasmThreadsInUse = 0;
/** Threads asked for by the next wasm start (initBackend's `wasmThreads`). */
let wasmThreadsWanted = 1;

async function startWasm(wasm: typeof import('@tensorflow/tfjs-backend-wasm'), threads: number): Promise<boolean> {
  if (threads > 1) {
    prepareThreadedWasm();
    wasm.setThreadsCount(threads);
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', threads > 1);
  return withCoreCount(threads, () => tf.setBackend('wasm'));
}

async function tryWasm(): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (!wasmPrepared) {
    // Point at the .wasm files shipped inside the package (a file path, so nothing is fetched).
    const require = createRequire(import.meta.url);
    const distDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
    wasm.setWasmPaths(distDir + path.sep);
    // Our kernels (missing gradients, matmul routing) must be registered before the backend is set.
    registerWasmKernels();
    wasmPrepared = true;
  }
  if (wasmThreadsInUse) {
    // The module is started once per process; a later call only switches back to it.
    if (!(await tf.setBackend('wasm'))) throw new Error("the 'wasm' backend did not initialise");
    return;
  }
  const threads = wasmThreadsWanted;
  if (await startWasm(wasm, threads)) {
    wasmThreadsInUse = threads > 1 ? wasm.getThreadsCount() : 1;
    if (threads > 1) unrefWasmWorkers(tf.backend());
    return;
  }
  if (threads > 1 && (await startWasm(wasm, 1))) {
    process.stderr.write(`tfjs backend: the threaded wasm build did not start; using one thread\n`);
    wasmThreadsInUse = 1;
    return;
  }
  throw new Error("the 'wasm' backend did not initialise");
}

let adapter: AdapterSummary | undefined;
async function tryWebgpu(allowSoftware: boolean): Promise<void> {
  adapter = await setWebgpuBackend(allowSoftware);
}

async function tryCpu(): Promise<void> {
  if (!(await tf.setBackend('cpu'))) throw new Error("the 'cpu' backend did not initialise");
}

const candidates: Record<Exclude<BackendName, 'auto'>, Array<[string, () => Promise<void>]>> = {
  tensorflow: [['native TensorFlow build', () => tryNative('any')]],
  webgpu: [['webgpu', () => tryWebgpu(true)]],
  wasm: [['wasm', tryWasm]],
  cpu: [['cpu', tryCpu]],
};
const AUTO_ORDER: Array<[string, () => Promise<void>]> = [
  ['native TensorFlow (CUDA)', () => tryNative('gpu')],
  ['webgpu (hardware adapter)', () => tryWebgpu(false)],
  ['native TensorFlow (CPU)', () => tryNative('cpu')],
  ...candidates.wasm,
  ...candidates.cpu,
];

/** The cpu backend prints "install our node backend" on first use; initBackend reports the choice itself. */
function silenceCpuBanner(): void {
  const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu && 'firstUse' in cpu) cpu.firstUse = false;
}

async function choose(name: BackendName, quiet: boolean): Promise<BackendChoice> {
  silenceCpuBanner();
  const list = name === 'auto' ? AUTO_ORDER : candidates[name];
  if (!list) throw new Error(`unknown backend '${name}' (expected one of ${BACKEND_NAMES.join(', ')})`);
  const tried: string[] = [];
  for (const [label, attempt] of list) {
    try {
      await attempt();
      await tf.ready();
      const choice: BackendChoice = { name: tf.getBackend(), tried };
      if (choice.name === 'webgpu') choice.adapter = adapter;
      if (choice.name === 'wasm') choice.threads = wasmThreadsInUse;
      if (choice.name === 'tensorflow') {
        const { info, threads } = registerTensorflowBackend();
        choice.native = info;
        choice.threads = threads.intra;
      }
      if (!quiet) {
        const skipped = tried.length ? ` (unavailable: ${tried.join('; ')})` : '';
        const threads = choice.threads ? ` (${choice.threads} thread${choice.threads > 1 ? 's' : ''})` : '';
        const native = choice.native
          ? ` ${choice.native.tensorflow}, ${choice.native.cuda ? 'CUDA' : 'CPU'} build`
          : '';
        process.stderr.write(`tfjs backend: ${choice.name}${threads} via ${label}${native}${skipped}\n`);
        if (choice.adapter) process.stderr.write(`webgpu adapter: ${describeAdapter(choice.adapter)}\n`);
      }
      return choice;
    } catch (err) {
      tried.push(`${label}: ${errorText(err)}`);
    }
  }
  throw new BackendUnavailableError(`no usable tfjs backend for '${name}': ${tried.join('; ')}`);
}

/**
 * Selects and initialises a backend. Idempotent: a second call with the same name (or 'auto' after any
 * successful choice) returns the first result; a different explicit name switches backend. A failed explicit
 * choice throws with every reason and leaves the current backend in place. `wasmThreads` (default 1) is the
 * size of the wasm thread pool (> 1: the threaded build, see wasm-threads.ts); it takes effect at the first
 * wasm start of the process. Commands pass wasmThreadCount() (MUSE_WASM_THREADS, default 1).
 */
export async function initBackend(
  name: BackendName = 'auto',
  opts: { quiet?: boolean; wasmThreads?: number } = {},
): Promise<BackendChoice> {
  if (pending) await pending.catch(() => undefined);
  // Decided by the first wasm start of the process (the module cannot be restarted with another build).
  if (opts.wasmThreads !== undefined) wasmThreadsWanted = Math.max(1, Math.floor(opts.wasmThreads));
  if (current && (current.requested === name || name === 'auto') && tf.getBackend() === current.choice.name) {
    return current.choice;
  }
  pending = choose(name, opts.quiet ?? false);
  try {
    const choice = await pending;
    current = { requested: name, choice };
    return choice;
  } finally {
    pending = undefined;
  }
}

export interface BackendStatus {
  name: Exclude<BackendName, 'auto'>;
  available: boolean;
  /** What it would run on (build, adapter, threads), or why it cannot run here. */
  detail: string;
}

/**
 * Every backend, each started once to see whether it runs here, with why it does or does not (for
 * `muse-train --backends`), and what 'auto' picks. Leaves the process on the backend 'auto' picks.
 */
export async function listBackends(): Promise<{ backends: BackendStatus[]; auto: string }> {
  silenceCpuBanner();
  const backends: BackendStatus[] = [];
  const probe = async (name: BackendStatus['name'], start: () => Promise<void>, describe: () => string) => {
    try {
      await start();
      await tf.ready();
      backends.push({ name, available: true, detail: describe() });
    } catch (err) {
      backends.push({ name, available: false, detail: errorText(err) });
    }
  };
  await probe(
    'tensorflow',
    () => tryNative('any'),
    () => {
      const { info, threads } = registerTensorflowBackend();
      return (
        `TensorFlow ${info.tensorflow}, ${info.cuda ? 'CUDA' : 'CPU'} build (${info.distribution}, from ${info.source}); ` +
        `devices at build time: ${info.devices.join(', ')}; ${threads.intra} intra-op / ${threads.inter} inter-op threads`
      );
    },
  );
  await probe(
    'webgpu',
    () => tryWebgpu(true),
    () => `${describeAdapter(adapter!)}${adapter!.software ? ' (software: used only with --backend webgpu)' : ''}`,
  );
  await probe(
    'wasm',
    tryWasm,
    () => `${wasmThreadsInUse} thread${wasmThreadsInUse > 1 ? 's' : ''} (MUSE_WASM_THREADS)`,
  );
  await probe('cpu', tryCpu, () => 'pure JavaScript, always there');
  const auto = await choose('auto', true);
  current = { requested: 'auto', choice: auto };
  return { backends, auto: auto.name };
}
