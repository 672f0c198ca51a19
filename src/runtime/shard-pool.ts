/**
 * The one pool of shard worker processes (`fetch --workers N`, `tokenize --workers N`). The IPC protocol:
 *   worker -> parent  {type:'hello'} once it listens; {type:'ready'} after init; {type:'done', shard, ...};
 *                     {type:'error', shard, message} (shard null: init failed); any other message -> onMessage
 *   parent -> worker  {type:'init', options}; {type:'shard', shard}; {type:'stop'} when it has nothing left to do
 * Each worker runs up to `perWorker` shards at once. Finished shards go to `onDone` one at a time, in the order
 * they finish (a caller writing manifests needs no lock), and a worker gets its next shard once `onDone`
 * resolved. A shard that fails (an error message, `onDone` throwing, or its worker exiting while running it)
 * goes to `onFailed`; with `stopOnFailure` no shard is started after that. A worker that cannot initialise stops
 * the pool: the shards not started come back in `notStarted`, with `startError`.
 */
import { forkModule } from '../util/child-module.ts';

export interface ShardPoolOptions<Init, Done extends { type: 'done'; shard: number }> {
  /** The worker module by its source name (`new URL('./worker.ts', import.meta.url)`); compiled builds run its .js. */
  workerFile: URL;
  workers: number;
  shards: readonly number[];
  /** Sent to each worker as {type:'init', options}. */
  init: Init;
  /** Shards a worker runs at once (default 1). */
  perWorker?: number;
  stopOnFailure?: boolean;
  /** A finished shard, with its wall time in the worker. */
  onDone: (m: Done, seconds: number) => void | Promise<void>;
  onFailed: (shard: number, message: string) => void;
  onMessage?: (m: { type: string }) => void;
}

export interface ShardPoolResult {
  /** Shards never sent to a worker (a worker failed to start, or stopOnFailure). */
  notStarted: number[];
  /** The first worker start-up failure, if any. */
  startError?: string;
}

type FromWorker =
  | { type: 'hello' }
  | { type: 'ready' }
  | { type: 'done'; shard: number }
  | { type: 'error'; shard: number | null; message: string }
  | { type: string };

export async function runShardPool<Init, Done extends { type: 'done'; shard: number }>(
  o: ShardPoolOptions<Init, Done>,
): Promise<ShardPoolResult> {
  const queue = [...o.shards];
  const perWorker = o.perWorker ?? 1;
  let stopped = false;
  let startError: string | undefined;
  let chain = Promise.resolve();
  const failed = (shard: number, message: string) => {
    o.onFailed(shard, message);
    if (o.stopOnFailure) stopped = true;
  };
  await Promise.all(
    Array.from(
      { length: Math.max(1, o.workers) },
      () =>
        new Promise<void>((resolve) => {
          const child = forkModule(o.workerFile, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
          const running = new Map<number, number>(); // shard -> start time
          let stopSent = false;
          const send = (m: unknown) => {
            if (child.connected) child.send(m as object);
          };
          const next = () => {
            while (!stopped && running.size < perWorker && queue.length) {
              const shard = queue.shift()!;
              running.set(shard, Date.now());
              send({ type: 'shard', shard });
            }
            if (running.size === 0 && !stopSent) {
              stopSent = true;
              send({ type: 'stop' });
            }
          };
          child.on('message', (m: FromWorker) => {
            if (m.type === 'hello') send({ type: 'init', options: o.init });
            else if (m.type === 'ready') next();
            else if (m.type === 'done') {
              const { shard } = m as Done;
              const seconds = (Date.now() - (running.get(shard) ?? Date.now())) / 1000;
              running.delete(shard);
              chain = chain
                .then(() => o.onDone(m as Done, seconds))
                .catch((err: Error) => failed(shard, err.message))
                .then(next);
            } else if (m.type === 'error') {
              const e = m as { shard: number | null; message: string };
              if (e.shard === null) {
                startError ??= e.message;
                stopped = true;
                child.kill();
                return;
              }
              running.delete(e.shard);
              failed(e.shard, e.message);
              next();
            } else o.onMessage?.(m);
          });
          child.on('error', (err) => {
            startError ??= `worker process: ${err.message}`;
            stopped = true;
          });
          child.on('exit', (code) => {
            for (const shard of running.keys()) failed(shard, `worker exited with code ${code} while running it`);
            running.clear();
            resolve();
          });
        }),
    ),
  );
  await chain;
  return { notStarted: queue, startError };
}
