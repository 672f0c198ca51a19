/**
 * What travels through Redis: one job per shard, for fetch or tokenize. A job carries everything a worker on
 * another machine needs (the resolved pipeline, the shared output folder, the opt-out snapshot), never a path
 * of the parent's own machine except the shared output folder.
 */
import { createHash } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import type { PipelineConfig } from '../pipeline/config-types.ts';
import type { SampleStatus } from '../shards/outcome.ts';
import type { BackendName } from '../runtime/backend.ts';
import type { ShardResult } from '../tokenize/run-tokenize.ts';

/** Bumped whenever a job's data changes shape: a worker refuses (without retries) a format it cannot read. */
export const JOB_FORMAT = 1;

/** BullMQ key prefix and the two queues. */
export const QUEUE_PREFIX = 'muse';
export const FETCH_QUEUE = 'fetch';
export const TOKENIZE_QUEUE = 'tokenize';
/** The job kinds a worker takes (`muse-data worker --kinds`): the one list. */
export const QUEUE_NAMES = [FETCH_QUEUE, TOKENIZE_QUEUE] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

export interface OptoutSnapshotRef {
  /** Path of the snapshot file (under the shared output folder). */
  file: string;
  /** sha256 of the file: the snapshot's version; a worker refuses a file that does not match. */
  sha256: string;
}

export interface FetchJobData {
  kind: 'fetch';
  format: number;
  shard: number;
  /** The resolved pipeline; `${data_root}` and `${project}` in its input paths are expanded by each worker. */
  cfg: PipelineConfig;
  /** Rows of the input as the parent counted them: a worker whose input differs refuses the job. */
  totalRows: number;
  /** The output folder, on a file system every worker can write. */
  datasetDir: string;
  optout: OptoutSnapshotRef;
}

/** Reported while a fetch shard runs: rows done so far, by status. */
export interface FetchJobProgress {
  counts: Partial<Record<SampleStatus, number>>;
}

export interface FetchJobResult {
  shard: number;
  /** True when the shard's stats file already existed: nothing was redone. */
  skipped: boolean;
  rows: number;
  successes: number;
}

export interface TokenizeJobData {
  kind: 'tokenize';
  format: number;
  shard: number;
  datasetDir: string;
  vq?: string;
  text: string[];
  batch: number;
  includeFallbacks: boolean;
  imageSize?: number;
  backend: BackendName;
  /** Keys of this shard not to cache (dedup decisions and pending opt-outs, as the parent found them). */
  exclude: string[];
}

export type TokenizeJobResult = ShardResult;

export function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 12);
}

/**
 * Job id: the dataset (name + a hash of its folder) and the shard, so enqueueing the same shard twice adds
 * nothing. BullMQ ids may not contain ':'.
 */
export function fetchJobId(name: string, datasetDir: string, shard: number): string {
  return `fetch-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${shortHash(datasetDir)}-${shard}`;
}

/** Tokenize job id: dataset folder + the caches' identity (models, options) + shard. */
export function tokenizeJobId(
  d: Omit<TokenizeJobData, 'shard' | 'exclude' | 'kind' | 'format'>,
  shard: number,
): string {
  const identity = JSON.stringify({
    vq: d.vq ?? 'builtin',
    text: d.text,
    inc: d.includeFallbacks,
    size: d.imageSize ?? null,
  });
  return `tokenize-${shortHash(d.datasetDir)}-${shortHash(identity)}-${shard}`;
}

export interface RetryPolicy {
  /** Tries per shard, the first included. */
  attempts: number;
  /** First retry delay, ms; doubled for each further retry. */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, backoffMs: 10_000 };

export function jobOptions(jobId: string, r: RetryPolicy): JobsOptions {
  return {
    jobId,
    attempts: r.attempts,
    backoff: { type: 'exponential', delay: r.backoffMs },
    // Completed jobs are only a log: the stats files are the truth. Keep a bounded number.
    removeOnComplete: { count: 10_000 },
    removeOnFail: false,
  };
}
