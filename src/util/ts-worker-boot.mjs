// Entry of worker threads that run TypeScript (src/util/ts-worker.ts): a worker thread does not inherit the
// tsx loader of its parent, so this plain-JS file registers it, then loads the TypeScript module.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
