/**
 * `muse-data fetch <pipeline> --queue URL`: enqueues one job per shard still to do and waits, printing progress
 * from the queue, while `muse-data worker` processes on any number of machines run the shards.
 *
 * This process alone writes to the data root's index.sqlite: it registers the dataset and snapshots the opt-out
 * lists for the workers (./optout-snapshot.ts). Samples are not sent here: each worker writes its shard's index
 * run beside the shard in the shared output folder, so `optout check` and `optout apply` work after a
 * distributed run as after a local one.
 */
import path from 'node:path';
import { Queue } from 'bullmq';
import {
  FetchError,
  describePlan,
  fetchSummary,
  planFetch,
  planProgress,
  type FetchOptions,
  type FetchSummary,
} from '../pipeline/run-fetch.ts';
import { shardName, shardPaths } from '../dataset/names.ts';
import { readStats } from '../dataset/stats.ts';
import type { SampleStatus } from '../shards/outcome.ts';
import { isShardComplete } from '../dataset/complete-shards.ts';
import { openFetchIndex, type FetchIndex } from '../index-db/fetch-index.ts';
import { bullConnection, checkQueue, parseQueueUrl } from './connection.ts';
import {
  DEFAULT_RETRY,
  FETCH_QUEUE,
  JOB_FORMAT,
  QUEUE_PREFIX,
  fetchJobId,
  jobOptions,
  type FetchJobData,
  type FetchJobProgress,
  type RetryPolicy,
} from './jobs.ts';
import { enqueueShards, watchShardJobs } from './shard-watch.ts';
import { writeOptoutSnapshot } from './optout-snapshot.ts';

export interface QueueFetchOptions extends Omit<FetchOptions, 'workers'> {
  queueUrl: string;
  retry?: RetryPolicy;
  /** How often the queue and the output folder are looked at, ms. */
  pollMs?: number;
}

/** Every how many polls each unfinished shard's job is looked up (to re-add lost ones). */
const LOST_CHECK_EVERY = 5;

export async function fetchThroughQueue(o: QueueFetchOptions): Promise<FetchSummary> {
  const started = Date.now();
  const conn = parseQueueUrl(o.queueUrl);
  await checkQueue(conn);
  if (o.retryStatuses)
    throw new FetchError('--retry-status runs shards in this process or its workers; it does not go with --queue');
  // The same plan as a local fetch, before anything is enqueued: input files and filter config checked, the
  // dataset registered, the shards chosen (--shards, --shard-index/--shard-count).
  const plan = await planFetch(o);
  const { totalRows, shards: total, selected, pending } = plan;
  const index = openFetchIndex(o.dataRoot, o.cfg.name, o.datasetDir);
  const queue = new Queue(FETCH_QUEUE, { connection: bullConnection(conn), prefix: QUEUE_PREFIX });
  queue.on('error', () => {}); // reported by the polling loop
  try {
    const optout = await writeOptoutSnapshot(o.dataRoot, o.datasetDir);
    const isDone = (s: number) => isShardComplete(o.datasetDir, s);
    const progress = planProgress(plan, o);
    const ids = new Map(pending.map((s) => [s, fetchJobId(o.cfg.name, o.datasetDir, s)]));
    const job = (shard: number) => ({
      shard,
      id: ids.get(shard)!,
      data: {
        kind: 'fetch',
        format: JOB_FORMAT,
        shard,
        cfg: o.cfg,
        totalRows,
        datasetDir: o.datasetDir,
        optout,
      } satisfies FetchJobData,
      opts: jobOptions(ids.get(shard)!, o.retry ?? DEFAULT_RETRY),
    });
    const added = await enqueueShards(queue, pending.map(job));
    progress.message(
      `${describePlan(plan, o, o.queueUrl)}, ${pending.length} to run (${added} enqueued, ${pending.length - added} already queued) -> ${o.datasetDir}`,
    );

    const seen = new Map<number, Partial<Record<SampleStatus, number>>>(); // rows already counted per shard
    // The most seen per status, never lowered: a job retried after its worker died starts counting from 0 again,
    // and lowering the mark would count its rows twice (progress past 100%, a negative ETA).
    const count = (shard: number, counts: Partial<Record<SampleStatus, number>>) => {
      const before = seen.get(shard) ?? {};
      const next = { ...before };
      for (const [s, c] of Object.entries(counts) as Array<[SampleStatus, number]>) {
        const d = c - (before[s] ?? 0);
        if (d > 0) {
          progress.row(s, d);
          next[s] = c;
        }
      }
      seen.set(shard, next);
    };
    const failed = new Map<number, string>();
    const waiting = new Set(pending);
    let polls = 0;
    let line = '';
    let outage = '';
    while (waiting.size) {
      try {
        const st = await watchShardJobs<FetchJobProgress>(
          queue,
          new Map([...waiting].map((s) => [s, ids.get(s)!])),
          polls % LOST_CHECK_EVERY === 0,
        );
        if (outage) progress.message(`queue ${o.queueUrl} reachable again`);
        outage = '';
        for (const [shard, p] of st.active) if (p?.counts) count(shard, p.counts);
        // Disk after Redis: a job completes only after its stats file is in place.
        for (const shard of [...waiting]) {
          if (!isDone(shard)) continue;
          const stats = await readStats(shardPaths(o.datasetDir, shard).stats);
          if (stats) count(shard, stats.status);
          progress.shardDone(shard, stats?.duration_s ?? 0);
          waiting.delete(shard);
        }
        for (const [shard, reason] of st.failed) {
          if (!waiting.has(shard)) continue;
          failed.set(shard, reason);
          waiting.delete(shard);
          progress.message(`shard ${shardName(shard)} failed: ${reason}`);
        }
        const lost = st.lost.filter((s) => waiting.has(s) && !isDone(s));
        if (lost.length) {
          const n = await enqueueShards(queue, lost.map(job));
          if (n)
            progress.message(
              `${n} shard job(s) missing from the queue (Redis restarted without its data, or cleaned): enqueued again`,
            );
        }
        const now = `queue: ${pending.length - waiting.size - failed.size} done, ${failed.size} failed, ${st.active.size} active, ${waiting.size - st.active.size} waiting; ${st.workers} worker connection(s)`;
        if (now !== line) progress.message(now);
        line = now;
      } catch (err) {
        const msg = (err as Error).message;
        if (msg !== outage) progress.message(`queue ${o.queueUrl} unreachable (${msg}); waiting for it`);
        outage = msg;
      }
      polls++;
      if (waiting.size) await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
    }
    return await fetchSummary({
      datasetDir: o.datasetDir,
      totalRows,
      shards: total,
      selected,
      pending,
      started,
      successes: progress.finish().successes,
      failed: [...failed].sort(([a], [b]) => a - b).map(([shard, error]) => ({ shard, error })),
    });
  } finally {
    await queue.close().catch(() => {});
    index.close();
  }
}
