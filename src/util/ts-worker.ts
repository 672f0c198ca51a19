/** Worker threads running a TypeScript module (through a small JS entry that registers tsx in the thread). */
import { Worker } from 'node:worker_threads';

/** Starts `entry` (a .ts module URL) in a worker thread; the module reads `workerData.data`. */
export function startTsWorker(entry: URL, data?: unknown): Worker {
  return new Worker(new URL('./ts-worker-boot.mjs', import.meta.url), { workerData: { entry: entry.href, data } });
}
