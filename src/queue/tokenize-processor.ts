/**
 * A worker's side of a tokenize job: the same `tokenizeShard` that `tokenize --workers` runs. It writes the
 * shard's cache files (atomically) and returns their manifest entries; the parent alone writes the manifests.
 * Models are loaded once per (models, options) and kept for the next job of the same run.
 */
import { UnrecoverableError, type Job } from 'bullmq';
import { JOB_FORMAT, type TokenizeJobData, type TokenizeJobResult } from './jobs.ts';

type Ctx = import('../tokenize/run-tokenize.ts').TokenizeContext;

export function createTokenizeProcessor() {
  let loaded: { key: string; ctx: Promise<Ctx> } | undefined;

  const contextFor = async (d: TokenizeJobData): Promise<Ctx> => {
    const key = JSON.stringify([
      d.datasetDir,
      d.vq ?? null,
      d.text,
      d.batch,
      d.includeFallbacks,
      d.imageSize ?? null,
      d.backend,
    ]);
    if (loaded?.key !== key) {
      const previous = loaded;
      // tfjs and the models are loaded only by workers that get tokenize jobs.
      const ctx = (async () => {
        const { initBackend } = await import('../runtime/backend.ts');
        const { loadTokenizeContext } = await import('../tokenize/run-tokenize.ts');
        (await previous?.ctx.catch(() => undefined))?.dispose();
        await initBackend(d.backend, { quiet: true });
        // No data root: the opt-outs to leave out come with each job (the parent read them from its index).
        return loadTokenizeContext({
          datasetDir: d.datasetDir,
          vq: d.vq,
          text: d.text,
          batch: d.batch,
          includeFallbacks: d.includeFallbacks,
          imageSize: d.imageSize,
        });
      })();
      loaded = { key, ctx };
      ctx.catch(() => {
        if (loaded?.ctx === ctx) loaded = undefined;
      });
    }
    return loaded.ctx;
  };

  const process = async (job: Job<TokenizeJobData, TokenizeJobResult>): Promise<TokenizeJobResult> => {
    const d = job.data;
    if (d.kind !== 'tokenize' || d.format !== JOB_FORMAT) {
      throw new UnrecoverableError(
        `job ${job.id}: a ${String(d.kind)} job of format ${String(d.format)}; this worker reads tokenize jobs of format ${JOB_FORMAT} (update muse on every machine)`,
      );
    }
    const ctx = await contextFor(d);
    const { tokenizeShard } = await import('../tokenize/run-tokenize.ts');
    // The dataset's own exclusions (dedup decisions, read by loadTokenizeContext) plus the job's.
    return tokenizeShard(d.shard, { ...ctx, exclude: new Set([...ctx.exclude, ...d.exclude]) });
  };

  const close = async () => {
    (await loaded?.ctx.catch(() => undefined))?.dispose();
    loaded = undefined;
  };
  return { process, close };
}
