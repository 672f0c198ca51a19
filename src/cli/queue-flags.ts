/**
 * Flags that `fetch` and `tokenize` share for running past one machine: `--queue URL` (jobs through Redis, see
 * src/queue/) and `--shard-index I --shard-count N` (a batch system's array job, no queue). Kept light: the
 * queue code is loaded only when `--queue` is given.
 */
import type { Argv } from 'yargs';
import type { RetryPolicy } from '../queue/jobs.ts';

/** `--queue`, `--job-attempts`, `--job-backoff` (fetch and tokenize). */
export function queueJobFlags<T>(y: Argv<T>) {
  return y
    .option('queue', {
      type: 'string',
      describe: 'enqueue one job per shard on this Redis (redis://HOST:PORT[/db]) and wait for `muse-data worker`s',
    })
    .option('job-attempts', {
      type: 'number',
      default: 3,
      describe: 'with --queue: tries per shard before it is left failed',
    })
    .option('job-backoff', {
      type: 'number',
      default: 10,
      describe: 'with --queue: seconds before the first retry (doubled for each further one)',
    });
}

/** The queue flags plus `--shard-index` / `--shard-count` (fetch). */
export function queueFlags<T>(y: Argv<T>) {
  return queueJobFlags(y)
    .option('shard-index', {
      type: 'number',
      describe: 'without a queue: run only shards i with i mod --shard-count = this (e.g. $SLURM_ARRAY_TASK_ID)',
    })
    .option('shard-count', {
      type: 'number',
      describe: 'without a queue: how many --shard-index processes share the shards',
    });
}

export function retryPolicy(a: Record<string, unknown>): RetryPolicy {
  const attempts = a['job-attempts'] as number;
  const backoff = a['job-backoff'] as number;
  if (!Number.isInteger(attempts) || attempts < 1)
    throw new Error(`--job-attempts: expected a positive integer, got ${String(a['job-attempts'])}`);
  if (!Number.isFinite(backoff) || backoff < 0)
    throw new Error(`--job-backoff: expected seconds >= 0, got ${String(a['job-backoff'])}`);
  return { attempts, backoffMs: Math.round(backoff * 1000) };
}

/** `--shard-index I --shard-count N` -> {index, count}, checked; undefined when neither is given. */
export function shardModulo(a: Record<string, unknown>): { index: number; count: number } | undefined {
  const i = a['shard-index'];
  const n = a['shard-count'];
  if (i === undefined && n === undefined) return undefined;
  if (i === undefined || n === undefined) throw new Error('--shard-index and --shard-count go together');
  if (a.queue !== undefined)
    throw new Error('--shard-index/--shard-count select shards without a queue; drop --queue (or them)');
  if (!Number.isInteger(n) || (n as number) < 1)
    throw new Error(`--shard-count: expected a positive integer, got ${String(n)}`);
  if (!Number.isInteger(i) || (i as number) < 0 || (i as number) >= (n as number))
    throw new Error(`--shard-index: expected an integer in 0-${(n as number) - 1}, got ${String(i)}`);
  return { index: i as number, count: n as number };
}
