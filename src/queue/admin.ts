/** `muse-data queue status|retry-failed|clean --queue URL`: what an operator needs to look at and unstick a run. */
import { Queue, type Job } from 'bullmq';
import { bullConnection, checkQueue, parseQueueUrl } from './connection.ts';
import { FETCH_QUEUE, QUEUE_PREFIX, TOKENIZE_QUEUE } from './jobs.ts';

const QUEUES = [FETCH_QUEUE, TOKENIZE_QUEUE] as const;
const STATES = ['waiting', 'active', 'delayed', 'completed', 'failed'] as const;

async function withQueues<T>(url: string, f: (queues: Queue[]) => Promise<T>): Promise<T> {
  const conn = parseQueueUrl(url);
  await checkQueue(conn);
  const queues = QUEUES.map((name) => new Queue(name, { connection: bullConnection(conn), prefix: QUEUE_PREFIX }));
  try {
    return await f(queues);
  } finally {
    await Promise.all(queues.map((q) => q.close()));
  }
}

export interface QueueStatus {
  queue: string;
  counts: Record<string, number>;
  workers: number;
  active: Array<{ id: string; shard: number; dataset: string; attempt: number; progress: unknown }>;
  failed: Array<{ id: string; shard: number; dataset: string; attempts: number; reason: string }>;
  /** Jobs waiting for their next attempt after a failure. */
  retrying: Array<{ id: string; shard: number; dataset: string; attempts: number; reason: string }>;
}

const dataset = (j: Job) => String(j.data?.datasetDir ?? '?');

export function queueStatus(url: string): Promise<QueueStatus[]> {
  return withQueues(url, (queues) =>
    Promise.all(
      queues.map(async (q) => {
        const [counts, workers, active, failed, delayed] = await Promise.all([
          q.getJobCounts(...STATES),
          q.getWorkersCount(),
          q.getJobs(['active'], 0, -1),
          q.getJobs(['failed'], 0, -1),
          q.getJobs(['delayed'], 0, -1),
        ]);
        const live = (js: Job[]) => js.filter((j): j is Job => !!j && j.id !== undefined);
        return {
          queue: q.name,
          counts,
          workers,
          active: live(active).map((j) => ({
            id: j.id!,
            shard: j.data.shard,
            dataset: dataset(j),
            attempt: j.attemptsMade + 1,
            progress: j.progress,
          })),
          failed: live(failed).map((j) => ({
            id: j.id!,
            shard: j.data.shard,
            dataset: dataset(j),
            attempts: j.attemptsMade,
            reason: (j.failedReason ?? '').split('\n')[0],
          })),
          retrying: live(delayed)
            .filter((j) => j.attemptsMade > 0)
            .map((j) => ({
              id: j.id!,
              shard: j.data.shard,
              dataset: dataset(j),
              attempts: j.attemptsMade,
              reason: (j.failedReason ?? '').split('\n')[0],
            })),
        };
      }),
    ),
  );
}

export function formatStatus(url: string, all: QueueStatus[]): string {
  const lines = [`queue ${url}`];
  for (const s of all) {
    lines.push(
      `${s.queue}: ${STATES.map((k) => `${s.counts[k] ?? 0} ${k}`).join(', ')}; ${s.workers} worker connection(s)`,
    );
    for (const a of s.active) lines.push(`  active   shard ${a.shard} of ${a.dataset} (attempt ${a.attempt})`);
    for (const r of s.retrying)
      lines.push(`  retrying shard ${r.shard} of ${r.dataset} after ${r.attempts} attempt(s): ${r.reason}`);
    for (const f of s.failed)
      lines.push(`  failed   shard ${f.shard} of ${f.dataset} after ${f.attempts} attempt(s): ${f.reason}`);
  }
  return lines.join('\n') + '\n';
}

/** Failed jobs go back to the queue with fresh attempts. Returns how many. */
export function retryFailed(url: string): Promise<number> {
  return withQueues(url, async (queues) => {
    let n = 0;
    for (const q of queues) {
      for (const j of await q.getJobs(['failed'], 0, -1)) {
        if (!j) continue;
        await j.retry('failed', { resetAttemptsMade: true });
        n++;
      }
    }
    return n;
  });
}

/**
 * Removes finished jobs (completed and failed); with `all`, every job including waiting ones (the shards on
 * disk are untouched: a later `fetch --queue` enqueues what is not done). Refuses `all` while jobs are active.
 */
export function cleanQueue(url: string, all: boolean): Promise<number> {
  return withQueues(url, async (queues) => {
    let n = 0;
    for (const q of queues) {
      if (all) {
        const c = await q.getJobCounts(...STATES);
        if (c.active)
          throw new Error(`queue ${q.name}: ${c.active} job(s) active; stop the workers first or clean without --all`);
        n += STATES.reduce((s, k) => s + (c[k] ?? 0), 0);
        await q.obliterate();
      } else {
        n += (await q.clean(0, 0, 'completed')).length + (await q.clean(0, 0, 'failed')).length;
      }
    }
    return n;
  });
}
