// Registers the 'tensorflow' backend from the project's native build (see build-dir.ts): the compiled tfjs-node
// addon, and tfjs-node's own kernel and backend code from its npm package. tfjs-node's index.js is not used: it
// looks for its addon where its download script puts it and sets the backend as a side effect.
// Its `require('@tensorflow/tfjs')` resolves up the folders to this project's copy, so there is one tfjs.
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import {
  ADDON_PATH,
  BUILD_COMMAND,
  PACKAGE_DIR,
  readBuildInfo,
  tensorflowBuildDir,
  type BuildInfo,
} from './build-dir.ts';

/**
 * TensorFlow's thread pools: MUSE_TF_THREADS (a number, or `all`) sizes the intra-op pool (one op's threads);
 * default every core this process may use. The inter-op pool (ops run side by side) gets 2: tfjs runs one op
 * at a time. TensorFlow reads TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS once, when its first context is
 * made; a value the user set there wins.
 */
export function tensorflowThreads(): { intra: number; inter: number } {
  const env = process.env.MUSE_TF_THREADS;
  let intra = os.availableParallelism();
  if (env !== undefined && env !== '' && env !== 'all') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`MUSE_TF_THREADS: expected a positive integer or 'all', got '${env}'`);
    intra = n;
  }
  return { intra, inter: Math.min(2, intra) };
}

/**
 * For `processes` processes that each load TensorFlow (tokenize --workers): unless MUSE_TF_THREADS is set, each
 * gets its share of the cores, so that together they do not oversubscribe the machine. Call before the first
 * backend start of this process; child processes inherit it.
 */
export function shareTensorflowThreads(processes: number): void {
  if (process.env.MUSE_TF_THREADS || processes <= 1) return;
  process.env.MUSE_TF_THREADS = String(Math.max(1, Math.floor(os.availableParallelism() / processes)));
}

function setThreadEnv(): { intra: number; inter: number } {
  const t = tensorflowThreads();
  process.env.TF_NUM_INTRAOP_THREADS ||= String(t.intra);
  process.env.TF_NUM_INTEROP_THREADS ||= String(t.inter);
  // oneDNN's OpenMP pool, where TensorFlow uses it, follows the same count.
  process.env.OMP_NUM_THREADS ||= process.env.TF_NUM_INTRAOP_THREADS;
  // TensorFlow's C++ INFO lines (oneDNN notice, CPU feature list) on every start: warnings and errors only.
  process.env.TF_CPP_MIN_LOG_LEVEL ||= '1';
  return { intra: Number(process.env.TF_NUM_INTRAOP_THREADS), inter: Number(process.env.TF_NUM_INTEROP_THREADS) };
}

export interface LoadedTensorflow {
  info: BuildInfo;
  threads: { intra: number; inter: number };
}

let loaded: LoadedTensorflow | undefined;

/**
 * Registers the 'tensorflow' backend from the build in `dir` (once per process). Throws with the build command
 * when there is no build, and with the loader's message when the addon does not load.
 */
export function registerTensorflowBackend(dir = tensorflowBuildDir()): LoadedTensorflow {
  if (loaded) return loaded;
  const { info, missing } = readBuildInfo(dir);
  if (!info) throw new Error(missing);
  const addon = path.join(dir, ADDON_PATH);
  if (!existsSync(addon)) throw new Error(`${addon} is missing (a partial build folder?): rerun ${BUILD_COMMAND}`);
  const threads = setThreadEnv();
  const require = createRequire(path.join(dir, PACKAGE_DIR, 'package.json'));
  let binding: unknown;
  try {
    binding = require(addon);
  } catch (err) {
    throw new Error(
      `the native TensorFlow addon ${addon} did not load (${(err as Error).message.split('\n')[0]}); ` +
        `it was built against ${info.source}: if that TensorFlow moved or was removed, rerun ${BUILD_COMMAND}`,
    );
  }
  require(path.join(dir, PACKAGE_DIR, 'dist', 'register_all_kernels.js'));
  const { NodeJSKernelBackend } = require(path.join(dir, PACKAGE_DIR, 'dist', 'nodejs_kernel_backend.js')) as {
    NodeJSKernelBackend: new (binding: unknown, packageName: string) => tf.KernelBackend;
  };
  // Priority 0: registering must not make tfjs pick this backend by itself; initBackend chooses.
  tf.registerBackend('tensorflow', () => new NodeJSKernelBackend(binding, '@tensorflow/tfjs-node'), 0);
  loaded = { info, threads };
  return loaded;
}

/** The build loaded in this process, if any. */
export function loadedTensorflow(): LoadedTensorflow | undefined {
  return loaded;
}
