/**
 * The parent's view of its shard jobs while it waits: which are active (with their progress), which failed for
 * good (with the reason), and which are missing from Redis (a restarted Redis without persistence, `queue
 * clean`) or completed without their output on disk, so they must be enqueued again. The output on disk decides
 * what is done; the queue only says who is working on what.
 */
import type { Job, Queue } from 'bullmq';

export interface ShardJobState<P> {
  active: Map<number, P | undefined>;
  failed: Map<number, string>;
  /** Shards whose job is gone or completed though the caller says the shard is not done. */
  lost: number[];
  workers: number;
}

/**
 * `ids`: the job id of each shard still waited for. `checkLost`: also ask Redis for each one's state (one
 * command per shard, so the caller does it every few polls rather than every poll).
 */
export async function watchShardJobs<P>(
  queue: Queue,
  ids: Map<number, string>,
  checkLost: boolean,
): Promise<ShardJobState<P>> {
  const byId = new Map([...ids].map(([shard, id]) => [id, shard]));
  const out: ShardJobState<P> = { active: new Map(), failed: new Map(), lost: [], workers: 0 };
  const [active, failed, workers] = await Promise.all([
    queue.getJobs(['active'], 0, -1),
    queue.getJobs(['failed'], 0, -1),
    queue.getWorkersCount(),
  ]);
  out.workers = workers;
  for (const j of active as Job[]) {
    const shard = j?.id === undefined ? undefined : byId.get(j.id);
    if (shard !== undefined)
      out.active.set(shard, (typeof j.progress === 'object' ? j.progress : undefined) as P | undefined);
  }
  for (const j of failed as Job[]) {
    const shard = j?.id === undefined ? undefined : byId.get(j.id);
    if (shard !== undefined)
      out.failed.set(shard, `${(j.failedReason ?? 'failed').split('\n')[0]} (after ${j.attemptsMade} attempt(s))`);
  }
  if (checkLost) {
    const states = await mapChunked([...ids], async ([shard, id]) => [shard, await queue.getJobState(id)] as const);
    for (const [shard, state] of states) if (state === 'unknown' || state === 'completed') out.lost.push(shard);
  }
  return out;
}

/**
 * Adds a job per shard unless one is already waiting or running for it. A failed or completed job of an earlier
 * run (the shard is not done on disk) is replaced by a fresh one with fresh attempts.
 */
export async function enqueueShards<D>(
  queue: Queue,
  jobs: Array<{ shard: number; id: string; data: D; opts: Parameters<Queue['add']>[2] }>,
): Promise<number> {
  const states = await mapChunked(jobs, (j) => queue.getJobState(j.id));
  const fresh: typeof jobs = [];
  for (const [i, j] of jobs.entries()) {
    if (states[i] === 'failed' || states[i] === 'completed') await queue.remove(j.id);
    else if (states[i] !== 'unknown') continue; // waiting, delayed or active: enqueueing twice adds nothing
    fresh.push(j);
  }
  for (let at = 0; at < fresh.length; at += 500) {
    await queue.addBulk(
      fresh.slice(at, at + 500).map((j) => ({ name: `shard-${j.shard}`, data: j.data, opts: j.opts })),
    );
  }
  return fresh.length;
}

/** `f` over `xs`, at most `chunk` Redis round trips in flight (a run may have many thousand shards). */
export async function mapChunked<T, R>(xs: readonly T[], f: (x: T) => Promise<R>, chunk = 500): Promise<R[]> {
  const out: R[] = [];
  for (let at = 0; at < xs.length; at += chunk) out.push(...(await Promise.all(xs.slice(at, at + chunk).map(f))));
  return out;
}
