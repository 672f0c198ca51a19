/**
 * A worker's side of a fetch job: the same `runShard` that `fetch --workers` runs, on a context built from the
 * job (its pipeline, its shared output folder, its opt-out snapshot) and this machine's data root.
 * A shard whose stats file exists is done whatever the queue says: the job then returns at once.
 */
import { isShardComplete } from '../dataset/complete-shards.ts';
import { UnrecoverableError, type Job } from 'bullmq';
import { createShardContext } from '../pipeline/context.ts';
import { runShard } from '../pipeline/shard-job.ts';
import type { SampleStatus } from '../shards/outcome.ts';
import { JOB_FORMAT, type FetchJobData, type FetchJobProgress, type FetchJobResult } from './jobs.ts';
import { openOptoutSnapshot } from './optout-snapshot.ts';

type Ctx = Awaited<ReturnType<typeof createShardContext>>;

export interface FetchProcessorOptions {
  dataRoot: string;
  projectRoot: string;
  /** How often a running shard reports its row counts to the queue, ms. */
  progressEveryMs?: number;
}

/** Contexts are kept per (pipeline, output folder, snapshot), reused by the jobs of one run, closed when idle. */
export function createFetchProcessor(o: FetchProcessorOptions) {
  const contexts = new Map<string, { ctx: Promise<Ctx>; users: number }>();
  const counts = new Map<string, Partial<Record<SampleStatus, number>>>(); // context key + shard -> rows so far
  const ctxKey = (d: FetchJobData) => JSON.stringify([d.cfg, d.datasetDir, d.optout.sha256]);
  let server: Promise<{ origin: string; close(): Promise<void> }> | undefined;

  const contextFor = async (d: FetchJobData): Promise<{ ctx: Ctx; release(): Promise<void> }> => {
    const key = ctxKey(d);
    let entry = contexts.get(key);
    if (!entry) {
      const ctx = (async () => {
        let localOrigin: string | undefined;
        if (d.cfg.local_server) {
          server ??= import('../sample-data/server.ts').then((m) => m.startSampleServer());
          localOrigin = (await server).origin;
        }
        const index = await openOptoutSnapshot(d.optout);
        try {
          const c = await createShardContext(
            { cfg: d.cfg, datasetDir: d.datasetDir, dataRoot: o.dataRoot, projectRoot: o.projectRoot, localOrigin },
            undefined,
            index,
          );
          c.onRow = (status, shard) => {
            const m = counts.get(`${key}#${shard}`);
            if (m) m[status] = (m[status] ?? 0) + 1;
          };
          return c;
        } catch (err) {
          index.close();
          throw err;
        }
      })();
      entry = { ctx, users: 0 };
      contexts.set(key, entry);
      ctx.catch(() => contexts.delete(key)); // a failed set-up is tried afresh by the next job
    }
    entry.users++;
    const e = entry;
    const release = async () => {
      e.users--;
      // Closed once no job uses it and jobs of another run have arrived, so one run's jobs keep it warm.
      for (const [k, v] of contexts) {
        if (v.users === 0 && contexts.size > 1) {
          contexts.delete(k);
          await (await v.ctx.catch(() => undefined))?.close();
        }
      }
    };
    try {
      return { ctx: await e.ctx, release };
    } catch (err) {
      e.users--;
      throw err;
    }
  };

  const process = async (job: Job<FetchJobData, FetchJobResult>): Promise<FetchJobResult> => {
    const d = job.data;
    if (d.kind !== 'fetch' || d.format !== JOB_FORMAT) {
      throw new UnrecoverableError(
        `job ${job.id}: a ${String(d.kind)} job of format ${String(d.format)}; this worker reads fetch jobs of format ${JOB_FORMAT} (update muse on every machine)`,
      );
    }
    if (isShardComplete(d.datasetDir, d.shard)) return { shard: d.shard, skipped: true, rows: 0, successes: 0 };
    const { ctx, release } = await contextFor(d);
    try {
      if (ctx.totalRows !== d.totalRows) {
        throw new Error(
          `the input on this machine has ${ctx.totalRows} rows where the run's has ${d.totalRows}: every worker must read the same metadata files`,
        );
      }
      const countsKey = `${ctxKey(d)}#${d.shard}`;
      counts.set(countsKey, {});
      const timer = setInterval(() => {
        const c = counts.get(countsKey);
        if (c) job.updateProgress({ counts: { ...c } } satisfies FetchJobProgress).catch(() => {});
      }, o.progressEveryMs ?? 1000);
      try {
        const stats = await runShard(d.shard, ctx);
        return { shard: d.shard, skipped: false, rows: stats.count, successes: stats.successes };
      } finally {
        clearInterval(timer);
        counts.delete(countsKey);
      }
    } finally {
      await release();
    }
  };

  const close = async () => {
    for (const v of contexts.values()) await (await v.ctx.catch(() => undefined))?.close();
    contexts.clear();
    await (await server)?.close();
  };
  return { process, close };
}
