// The threaded (pthreads + SIMD) wasm build under Node. Why it does not start out of the box: tfjs hands
// emscripten its pthread worker script as a Blob URL (`URL.createObjectURL(new Blob([wasmWorkerContents]))`)
// and the main script as a Blob, which is what a browser needs; Node's worker_threads cannot start a worker
// from a `blob:` URL and the worker's Node `importScripts` reads files only. The emscripten glue itself
// supports Node (worker_threads, SharedArrayBuffer). So we give emscripten real files instead:
//  - the worker script, written once to the OS temp folder (the package's own text plus a two-line shim);
//  - `importScripts` in the worker loads the package's threaded factory with require() (same file, on disk).
// Nothing is downloaded; the temp file is rewritten only when its content changes.
// A second obstacle: the wasm module caps XNNPACK's thread pool at emscripten_num_logical_cores() / 2 (it
// assumes two hyper-threads per core), read once when the module starts; on a 2-vCPU machine that is 1
// thread. Under Node that count is `require("os").cpus().length`, so withCoreCount() makes it report twice
// the cores we want for the moment the module starts, and the pool gets the threads asked for.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

let workerFile: string | undefined;

/** Writes (once) the pthread worker script emscripten will start with worker_threads; returns its path. */
function ensureWorkerFile(): string {
  if (workerFile) return workerFile;
  const { wasmWorkerContents } =
    require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as {
      wasmWorkerContents: string;
    };
  const factory = require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
  // As tfjs does before making its Blob: the template literal turned "\n" escapes into newlines.
  const code =
    wasmWorkerContents.replace(/\n/g, '\\n') +
    `\n;global.importScripts = function () { global.WasmBackendModuleThreadedSimd = require(${JSON.stringify(factory)}); };\n`;
  const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'muse-tfjs-wasm');
  const file = path.join(dir, `threaded-simd-worker-${hash}.cjs`);
  if (!existsSync(file) || readFileSync(file, 'utf8') !== code) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, code);
    renameSync(tmp, file);
  }
  workerFile = file;
  return file;
}

let patched = false;

/**
 * Prepares the process for the threaded wasm build: the pthread worker script becomes a file. tfjs asks for
 * the worker's URL through URL.createObjectURL on a JavaScript Blob; that one call is answered with the path.
 */
export function prepareThreadedWasm(): void {
  const file = ensureWorkerFile();
  if (patched) return;
  const original = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (obj: Blob) =>
    obj instanceof Blob && obj.type === 'application/javascript' ? file : original(obj);
  patched = true;
}

/**
 * Runs `start` (the wasm backend's initialisation) while os.cpus() lists `2 * threads` entries, so that the
 * module's "logical cores / 2" cap equals `threads`. Restored right after.
 */
export async function withCoreCount<T>(threads: number, start: () => Promise<T>): Promise<T> {
  const original = os.cpus;
  const cpus = original();
  os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]);
  try {
    return await start();
  } finally {
    os.cpus = original;
  }
}

/**
 * Threads the commands give the wasm backend: MUSE_WASM_THREADS (a number, or `all` for every core the OS gives
 * this process); 1 when unset. Opt-in, because on the shared 2-core machine the threaded build measured slower
 * than the single-thread one for `tiny` (see README, bench train); set it where the cores are yours.
 */
export function wasmThreadCount(): number {
  const env = process.env.MUSE_WASM_THREADS;
  if (env === undefined || env === '') return 1;
  if (env === 'all') return Math.max(1, os.availableParallelism());
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`MUSE_WASM_THREADS: expected a positive integer or 'all', got '${env}'`);
  return n;
}

/**
 * The pool's worker threads must not keep the process alive once the program is done (emscripten leaves the
 * XNNPACK pool threads referenced; a finished command would then never exit).
 */
export function unrefWasmWorkers(backend: unknown): void {
  const pthread = (
    backend as {
      wasm?: { PThread?: { runningWorkers?: Array<{ unref?(): void }>; unusedWorkers?: Array<{ unref?(): void }> } };
    }
  ).wasm?.PThread;
  for (const w of [...(pthread?.runningWorkers ?? []), ...(pthread?.unusedWorkers ?? [])]) w.unref?.();
}
