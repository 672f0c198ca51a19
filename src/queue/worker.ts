/**
 * `muse-data worker --queue URL`: takes fetch and tokenize shard jobs from Redis, on any number of machines.
 *
 * Dead workers: BullMQ keeps a lock on every active job, renewed by its worker every lockDuration / 2. A worker
 * killed with `kill -9` stops renewing; once the lock has expired, the next stalled-job check of any live worker
 * (every stalledInterval) moves the job back to the queue, and another worker redoes the shard from scratch
 * (`runShard` removes a half-written shard's stats first; every file is tmp + rename). Recovery therefore takes
 * at most lockDuration + stalledInterval (defaults below: 30 s + 15 s).
 *
 * SIGTERM / SIGINT: stop taking jobs and finish the shards in hand, then exit 0. A second signal exits at once;
 * the shards in hand are then released through the stalled-job check like a killed worker's.
 */
import { Worker } from 'bullmq';
import { bullConnection, checkQueue, parseQueueUrl } from './connection.ts';
import { FETCH_QUEUE, QUEUE_PREFIX, TOKENIZE_QUEUE, type QueueName } from './jobs.ts';
import { createFetchProcessor } from './fetch-processor.ts';
import { createTokenizeProcessor } from './tokenize-processor.ts';

export interface WorkerTimings {
  /** ms a job's lock lasts without renewal. */
  lockDurationMs: number;
  /** ms between stalled-job checks. */
  stalledIntervalMs: number;
}

export const DEFAULT_TIMINGS: WorkerTimings = { lockDurationMs: 30_000, stalledIntervalMs: 15_000 };

export interface WorkerOptions {
  queueUrl: string;
  /** Fetch shards at once in this process (tokenize: always one). */
  concurrency: number;
  dataRoot: string;
  projectRoot: string;
  kinds: QueueName[];
  timings?: Partial<WorkerTimings>;
  log?: (msg: string) => void;
  /** Resolves when the worker should stop (default: SIGTERM / SIGINT). */
  stopSignal?: Promise<void>;
}

export async function runWorker(o: WorkerOptions): Promise<void> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const conn = parseQueueUrl(o.queueUrl);
  await checkQueue(conn);
  const t = { ...DEFAULT_TIMINGS, ...o.timings };
  const common = {
    connection: bullConnection(conn),
    prefix: QUEUE_PREFIX,
    lockDuration: t.lockDurationMs,
    stalledInterval: t.stalledIntervalMs,
    // A shard may be recovered from a dead worker this many times before it counts as failed.
    maxStalledCount: 3,
  };
  const fetch = o.kinds.includes(FETCH_QUEUE)
    ? createFetchProcessor({ dataRoot: o.dataRoot, projectRoot: o.projectRoot })
    : undefined;
  const tokenize = o.kinds.includes(TOKENIZE_QUEUE) ? createTokenizeProcessor() : undefined;
  const workers: Worker[] = [];
  if (fetch) workers.push(new Worker(FETCH_QUEUE, fetch.process, { ...common, concurrency: o.concurrency }));
  if (tokenize) workers.push(new Worker(TOKENIZE_QUEUE, tokenize.process, { ...common, concurrency: 1 }));
  let lastError = '';
  for (const w of workers) {
    w.on('active', (job) =>
      log(
        `worker ${process.pid}: ${w.name} shard ${job.data.shard} started (job ${job.id}, attempt ${job.attemptsMade + 1})`,
      ),
    );
    w.on('completed', (job) => log(`worker ${process.pid}: ${w.name} shard ${job.data.shard} done`));
    w.on('failed', (job, err) =>
      log(`worker ${process.pid}: ${w.name} shard ${job?.data.shard} failed: ${err.message.split('\n')[0]}`),
    );
    // The lock of a shard in hand could not be renewed (this process stalled longer than the lock, or Redis lost
    // it): another worker may now take that shard while this one still writes it. Said loudly; see the README.
    w.on('lockRenewalFailed', (ids: string[]) =>
      log(`worker ${process.pid}: WARNING lost the lock of ${ids.join(', ')}; another worker may redo it concurrently`),
    );
    w.on('error', (err) => {
      // Connection trouble (Redis restarting): BullMQ reconnects by itself; say it once per kind of error.
      if (err.message !== lastError) log(`worker ${process.pid}: ${err.message}`);
      lastError = err.message;
    });
  }
  log(
    `worker ${process.pid}: taking ${o.kinds.join(' and ')} jobs from ${o.queueUrl} (fetch concurrency ${o.concurrency}; ` +
      `a dead worker's shard is taken over within ${(t.lockDurationMs + t.stalledIntervalMs) / 1000}s)`,
  );

  const stop =
    o.stopSignal ??
    new Promise<void>((resolve) => {
      let signalled = false;
      const onSignal = (sig: NodeJS.Signals) => {
        if (signalled) {
          log(
            `worker ${process.pid}: ${sig} again, exiting now; unfinished shards go back to the queue after the lock expires`,
          );
          process.exit(1);
        }
        signalled = true;
        log(`worker ${process.pid}: ${sig}, finishing the shards in hand (send it again to exit now)`);
        resolve();
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  await stop;
  await Promise.all(workers.map((w) => w.close()));
  await fetch?.close();
  await tokenize?.close();
  log(`worker ${process.pid}: stopped`);
}
