/**
 * `muse-data tokenize <dataset> --queue URL`: the same run as a local tokenize (models checked, caches opened,
 * shards to do chosen by runTokenize), but each pending shard is a job for `muse-data worker`s. Workers write the
 * cache files (atomically); this process alone writes the manifests, from each completed job's result.
 */
import path from 'node:path';
import { Queue } from 'bullmq';
import { tf, type BackendName } from '../runtime/backend.ts';
import { runTokenize, type ShardResult, type TokenizeOptions, type TokenizeSummary } from '../tokenize/run-tokenize.ts';
import { shardName } from '../dataset/names.ts';
import { absoluteVqSpec } from '../models/registry.ts';
import { absoluteTextEncoderSpec } from '../models/text/index.ts';
import { bullConnection, checkQueue, parseQueueUrl } from './connection.ts';
import {
  DEFAULT_RETRY,
  JOB_FORMAT,
  QUEUE_PREFIX,
  TOKENIZE_QUEUE,
  jobOptions,
  tokenizeJobId,
  type RetryPolicy,
  type TokenizeJobData,
} from './jobs.ts';
import { enqueueShards, mapChunked, watchShardJobs } from './shard-watch.ts';

export interface QueueTokenizeOptions extends Omit<TokenizeOptions, 'workers' | 'runPending'> {
  queueUrl: string;
  retry?: RetryPolicy;
  pollMs?: number;
}

/**
 * The models as a job names them for the workers, through each spec's one parser: a built-in by its name (the
 * VQGAN as `builtin`, whichever way it was spelled: `vqgan-tiny-seed0` too), folders as absolute paths (every worker
 * must find them: on a shared path).
 */
export function jobModelSpecs(
  vq: string | undefined,
  text: readonly string[],
): { vq: string | undefined; text: string[] } {
  return { vq: vq === undefined ? undefined : absoluteVqSpec(vq), text: text.map(absoluteTextEncoderSpec) };
}

export async function tokenizeThroughQueue(o: QueueTokenizeOptions): Promise<TokenizeSummary> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const conn = parseQueueUrl(o.queueUrl);
  await checkQueue(conn);
  const base = {
    datasetDir: path.resolve(o.datasetDir),
    ...jobModelSpecs(o.vq, o.text),
    batch: o.batch,
    includeFallbacks: o.includeFallbacks,
    imageSize: o.imageSize,
    backend: tf.getBackend() as BackendName,
  };
  const failures: string[] = [];
  const summary = await runTokenize({
    ...o,
    runPending: async (pending, record, exclude) => {
      if (!pending.length) return;
      const queue = new Queue(TOKENIZE_QUEUE, { connection: bullConnection(conn), prefix: QUEUE_PREFIX });
      queue.on('error', () => {});
      try {
        const ids = new Map(pending.map((s) => [s, tokenizeJobId(base, s)]));
        const job = (shard: number) => ({
          shard,
          id: ids.get(shard)!,
          data: {
            kind: 'tokenize',
            format: JOB_FORMAT,
            shard,
            ...base,
            exclude: [...exclude].filter((k) => k.startsWith(shardName(shard))),
          } satisfies TokenizeJobData,
          opts: jobOptions(ids.get(shard)!, o.retry ?? DEFAULT_RETRY),
        });
        const added = await enqueueShards(queue, pending.map(job));
        log(
          `tokenize: ${pending.length} shard job(s) on ${o.queueUrl} (${added} enqueued, ${pending.length - added} already queued)`,
        );
        const waiting = new Set(pending);
        let outage = '';
        for (let poll = 0; waiting.size; poll++) {
          try {
            const st = await watchShardJobs(queue, new Map([...waiting].map((s) => [s, ids.get(s)!])), poll % 5 === 0);
            if (outage) log(`queue ${o.queueUrl} reachable again`);
            outage = '';
            // Results after the state lists: a job's result is read once it has completed.
            const shards = [...waiting];
            const jobs = await mapChunked(shards, (s) => queue.getJob(ids.get(s)!));
            for (const [i, j] of jobs.entries()) {
              if (!j?.finishedOn || j.failedReason || !j.returnvalue) continue;
              await record(j.returnvalue as ShardResult);
              waiting.delete(shards[i]);
            }
            for (const [shard, reason] of st.failed) {
              if (!waiting.delete(shard)) continue;
              failures.push(`shard ${shardName(shard)}: ${reason}`);
              log(`tokenize shard ${shardName(shard)} failed: ${reason}`);
            }
            const lost = st.lost.filter((s) => waiting.has(s));
            if (lost.length) {
              // completed ones were recorded above; what is left lost its job (Redis restarted without its data)
              const again = [];
              for (const s of lost) if ((await queue.getJobState(ids.get(s)!)) === 'unknown') again.push(s);
              if (again.length && (await enqueueShards(queue, again.map(job))))
                log(`${again.length} tokenize job(s) missing from the queue: enqueued again`);
            }
          } catch (err) {
            const msg = (err as Error).message;
            if (msg !== outage) log(`queue ${o.queueUrl} unreachable (${msg}); waiting for it`);
            outage = msg;
          }
          if (waiting.size) await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
        }
      } finally {
        await queue.close().catch(() => {});
      }
    },
  });
  if (failures.length)
    throw new Error(
      `tokenize through ${o.queueUrl}: ${failures.length} shard(s) failed (the others are recorded; a rerun redoes these):\n${failures.join('\n')}`,
    );
  return summary;
}
