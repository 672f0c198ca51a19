/**
 * Worker threads running one of our modules. Under tsx a thread does not inherit the loader, so a small JS entry
 * registers tsx in the thread first; compiled (dist/), the module's .js file is the thread's entry.
 */
import { Worker } from 'node:worker_threads';
import { RUNNING_COMPILED, moduleUrl } from './child-module.ts';

/** Starts `entry` (a .ts module URL, e.g. `new URL('./x-worker.ts', import.meta.url)`) in a worker thread; the module reads `workerData.data`. */
export function startTsWorker(entry: URL, data?: unknown): Worker {
  if (RUNNING_COMPILED) return new Worker(moduleUrl(entry), { workerData: { entry: moduleUrl(entry).href, data } });
  return new Worker(new URL('./ts-worker-boot.mjs', import.meta.url), { workerData: { entry: entry.href, data } });
}
