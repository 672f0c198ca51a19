/**
 * `muse-data fetch`: selects the shards still to do, runs them in this process (`--workers 1`) or in worker
 * processes, shows progress and returns a summary built from the shards' stats files.
 */
import pLimit from 'p-limit';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { PipelineConfig } from './config-types.ts';
import type { ContextOptions } from './context.ts';
import type { ShardJobContext } from './shard-job.ts';
import { createSource, type Source } from '../sources/index.ts';
import { prepareRecordFilter } from '../filters/index.ts';
import { FetchProgress, type LogFormat } from './progress.ts';
import type { FromWorker } from './worker.ts';
import { runShardPool } from '../runtime/shard-pool.ts';
import { shardCount, shardPaths, shardsDir } from '../dataset/names.ts';
import { readStats, type ShardStats } from '../dataset/stats.ts';
import { isShardComplete } from '../dataset/complete-shards.ts';
import { datasetJsonPath, readDatasetJson, writeDatasetJson } from '../dataset/dataset-json.ts';
import { parseShardSelection as parseSelection } from '../dataset/shard-selection.ts';
import { openIndex } from '../index-db/db.ts';
import { SAMPLE_STATUSES, type SampleStatus } from '../shards/outcome.ts';
import type { CutOff } from '../fetch/origin-health.ts';
import { isRetried } from './retry-rows.ts';

export interface FetchOptions {
  cfg: PipelineConfig;
  datasetDir: string;
  dataRoot: string;
  projectRoot: string;
  /** `cfg.name` came from `--name`: refused when the folder is registered under another name. */
  nameGiven?: boolean;
  /** Shard selection as given by `--shards` (e.g. "0-99", "3,5,7-9"); all shards when absent. */
  shards?: string;
  /** `--shard-index I --shard-count N`: of the selected shards, only those with shard mod count = index. */
  shardModulo?: { index: number; count: number };
  workers: number;
  logFormat: LogFormat;
  /** Seconds between plain / JSON progress lines (default 5). */
  progressIntervalS?: number;
  /**
   * `--retry-status host_unresponsive,...`: complete shards with rows of these statuses or reasons are run again
   * for just those rows (the others are kept byte for byte); incomplete shards run as usual.
   */
  retryStatuses?: string[];
}

export interface FetchSummary {
  dataset: string;
  total_rows: number;
  shards_total: number;
  shards_selected: number;
  shards_run: number;
  shards_skipped: number;
  shards_failed: Array<{ shard: number; error: string }>;
  rows: number;
  status: Record<SampleStatus, number>;
  /** status -> reason -> count over the selected shards (reasons of non-ok rows, as in the stats files). */
  reasons: Record<string, Record<string, number>>;
  elapsed_s: number;
  successes_per_s: number;
  /** Largest peak resident set of any one process of the run (this one or a worker), MiB. */
  peak_rss_mb: number;
  /** Origins cut off during the run (their rows ended `host_unresponsive` without a request); local runs only. */
  cut_origins?: CutOff[];
}

export class FetchError extends Error {}

/**
 * Shards each process works on at once: while one shard waits for its last slow downloads, the next one
 * keeps the CPU busy (a shard is written in key order, so its tail would otherwise idle the process).
 */
const SHARDS_PER_PROCESS = 2;

/** Parses "0-99", "3,5,7-9", "4" into sorted shard indices, checked against the shard count (the one grammar). */
export function parseShardSelection(spec: string | undefined, total: number): number[] {
  try {
    return parseSelection(spec, total);
  } catch (err) {
    throw new FetchError((err as Error).message);
  }
}

/** What a fetch run will do: decided by `planFetch`, the same way for a local run and a queued one. */
export interface FetchPlan {
  /** The input, opened (every input file checked). */
  source: Source;
  totalRows: number;
  /** Shards of the whole input. */
  shards: number;
  /** `--shards`, then of those `--shard-index I --shard-count N`. */
  selected: number[];
  /** Complete selected shards with rows to fetch again (`--retry-status`). */
  retried: number[];
  /** Selected shards to run: incomplete, or retried. */
  pending: number[];
  /** Input rows of the pending shards (what progress counts to). */
  pendingRows: number;
}

export type FetchPlanOptions = Pick<
  FetchOptions,
  'cfg' | 'datasetDir' | 'dataRoot' | 'projectRoot' | 'nameGiven' | 'shards' | 'shardModulo' | 'retryStatuses'
>;

/**
 * The planning phase of every fetch, local or through the queue: checks the input files and the filter config
 * before any shard is written, registers the dataset, and picks the shards to run. Loads nothing heavier: the
 * planning process may only schedule and report.
 */
export async function planFetch(o: FetchPlanOptions): Promise<FetchPlan> {
  const source = createSource(o.cfg.input, { dataRoot: o.dataRoot, projectRoot: o.projectRoot });
  const { totalRows } = await source.open();
  await prepareRecordFilter(o.cfg.filters, { baseDir: o.projectRoot });
  const shards = shardCount(totalRows, o.cfg.samples_per_shard);
  const m = o.shardModulo;
  const selected = parseShardSelection(o.shards, shards).filter((s) => !m || s % m.count === m.index);
  await registerDataset(o, totalRows, shards);
  const retried = o.retryStatuses ? await shardsToRetry(o.datasetDir, selected, new Set(o.retryStatuses)) : [];
  const pending = selected.filter((s) => !isShardComplete(o.datasetDir, s) || retried.includes(s));
  const pendingRows = pending.reduce(
    (n, s) => n + Math.min(o.cfg.samples_per_shard, totalRows - s * o.cfg.samples_per_shard),
    0,
  );
  return { source, totalRows, shards, selected, retried, pending, pendingRows };
}

/** The progress display of a planned run. */
export function planProgress(plan: FetchPlan, o: Pick<FetchOptions, 'logFormat' | 'progressIntervalS'>): FetchProgress {
  return new FetchProgress(
    plan.pendingRows,
    plan.pending.length,
    o.logFormat,
    process.stderr,
    (o.progressIntervalS ?? 5) * 1000,
  );
}

/** "fetch NAME: R rows, T shard(s); S selected, C already complete": a run's first line, before how it runs. */
export function describePlan(
  plan: FetchPlan,
  o: Pick<FetchOptions, 'cfg' | 'retryStatuses'>,
  through?: string,
): string {
  const { selected, pending, retried } = plan;
  return (
    `fetch ${o.cfg.name}${through ? ` through ${through}` : ''}: ${plan.totalRows} rows, ${plan.shards} shard(s); ${selected.length} selected, ` +
    `${selected.length - pending.length + retried.length} already complete` +
    (o.retryStatuses ? ` (${retried.length} of them with rows to retry: ${o.retryStatuses.join(', ')})` : '')
  );
}

export async function runFetch(o: FetchOptions): Promise<FetchSummary> {
  const started = Date.now();
  const plan = await planFetch(o);
  const { source, totalRows, shards: total, selected, pending } = plan;
  const server = o.cfg.local_server ? await (await import('../sample-data/server.ts')).startSampleServer() : undefined;
  const ctxOptions: ContextOptions = {
    cfg: o.cfg,
    datasetDir: o.datasetDir,
    dataRoot: o.dataRoot,
    projectRoot: o.projectRoot,
    localOrigin: server?.origin,
    retryStatuses: o.retryStatuses,
  };
  try {
    const progress = planProgress(plan, o);
    progress.message(
      `${describePlan(plan, o)}, ${pending.length} to run with ${Math.min(o.workers, Math.max(pending.length, 1))} worker(s) -> ${o.datasetDir}`,
    );
    const failed: FetchSummary['shards_failed'] = [];
    const rss = { maxKb: 0 };
    if (pending.length === 0) {
      // nothing to do: every selected shard is complete
    } else if (o.workers <= 1 || pending.length === 1) {
      await runInProcess(pending, ctxOptions, { source, totalRows }, progress, failed);
    } else {
      await runInWorkers(pending, Math.min(o.workers, pending.length), ctxOptions, progress, failed, rss);
    }
    const summary = await fetchSummary({
      datasetDir: o.datasetDir,
      totalRows,
      shards: total,
      selected,
      pending,
      failed,
      started,
      successes: progress.finish().successes,
      peakRssKb: rss.maxKb,
    });
    if (pending.length) await adviseCompaction(o.dataRoot, (m) => progress.message(m));
    return { ...summary, cut_origins: progress.cutOrigins() };
  } finally {
    await server?.close();
  }
}

async function runInProcess(
  pending: number[],
  options: ContextOptions,
  opened: Pick<ShardJobContext, 'source' | 'totalRows'>,
  progress: FetchProgress,
  failed: FetchSummary['shards_failed'],
): Promise<void> {
  const { createShardContext } = await import('./context.ts');
  const { runShard } = await import('./shard-job.ts');
  const ctx = await createShardContext(options, opened);
  ctx.onRow = (status) => progress.row(status);
  const slot = pLimit(SHARDS_PER_PROCESS);
  const live = setInterval(() => progress.live('main', ctx.live()), 1000);
  try {
    await Promise.all(
      pending.map((shard) =>
        slot(async () => {
          const t = Date.now();
          try {
            await runShard(shard, ctx);
            progress.shardDone(shard, (Date.now() - t) / 1000);
          } catch (err) {
            failed.push({ shard, error: (err as Error).message });
            progress.message(`shard ${shard} failed: ${(err as Error).message}`);
          }
        }),
      ),
    );
  } finally {
    clearInterval(live);
    progress.live('main', ctx.live());
    await ctx.close();
  }
}

/** Complete selected shards whose stats count rows of a status or reason in `wanted`. */
async function shardsToRetry(
  datasetDir: string,
  selected: readonly number[],
  wanted: ReadonlySet<string>,
): Promise<number[]> {
  const out: number[] = [];
  for (const s of selected) {
    const st = isShardComplete(datasetDir, s) ? await readStats(shardPaths(datasetDir, s).stats) : null;
    if (!st) continue;
    const hit =
      Object.entries(st.reasons ?? {}).some(([status, byReason]) =>
        Object.keys(byReason).some((reason) => isRetried(wanted, status, reason)),
      ) || Object.entries(st.status).some(([status, n]) => (n ?? 0) > 0 && wanted.has(status));
    if (hit) out.push(s);
  }
  return out;
}

/**
 * `dataset.json` records the pipeline a dataset folder was made with. Rerunning with a pipeline that would
 * produce different shards (other input, shard size, image or filter settings) is refused: mixing the two would
 * give a dataset no single config describes.
 */
export async function registerDataset(
  o: Pick<FetchOptions, 'cfg' | 'datasetDir' | 'dataRoot' | 'nameGiven'>,
  totalRows: number,
  shards: number,
): Promise<void> {
  // The name first (--name, else the folder's name): a name another folder holds is refused before anything is written.
  const name = o.nameGiven ? o.cfg.name : path.basename(path.resolve(o.datasetDir));
  const index = openIndex(o.dataRoot);
  try {
    index.registerDataset(name, o.datasetDir, { explicit: o.nameGiven });
  } catch (err) {
    throw new FetchError((err as Error).message);
  } finally {
    index.close();
  }
  await mkdir(shardsDir(o.datasetDir), { recursive: true });
  const file = datasetJsonPath(o.datasetDir);
  const outputShaping = (cfg: PipelineConfig) =>
    JSON.stringify({
      input: cfg.input,
      filters: cfg.filters,
      image: cfg.image,
      dead_links: cfg.dead_links,
      samples_per_shard: cfg.samples_per_shard,
    });
  const prev = readDatasetJson<PipelineConfig>(o.datasetDir);
  if (prev) {
    if (outputShaping(prev.pipeline) !== outputShaping(o.cfg)) {
      throw new FetchError(
        `${o.datasetDir} was fetched with a different pipeline configuration (input, filters, image or shard size differ; see ${file}). ` +
          `Use another --out folder, or delete the folder to start over.`,
      );
    }
    return;
  }
  await writeDatasetJson(o.datasetDir, {
    name,
    total_rows: totalRows,
    shards,
    created: new Date().toISOString(),
    pipeline: o.cfg,
  });
}

async function runInWorkers(
  pending: number[],
  n: number,
  options: ContextOptions,
  progress: FetchProgress,
  failed: FetchSummary['shards_failed'],
  rss: { maxKb: number },
): Promise<void> {
  type Done = Extract<FromWorker, { type: 'done' }>;
  const r = await runShardPool<ContextOptions, Done>({
    workerFile: new URL('./worker.ts', import.meta.url),
    workers: n,
    shards: pending,
    init: options,
    perWorker: SHARDS_PER_PROCESS,
    onMessage: (m) => {
      const rows = m as FromWorker;
      if (rows.type === 'rows') for (const [s, c] of Object.entries(rows.counts)) progress.row(s as SampleStatus, c);
      else if (rows.type === 'live') progress.live(String(rows.pid), rows.status);
    },
    onDone: (m, seconds) => {
      rss.maxKb = Math.max(rss.maxKb, m.max_rss_kb);
      progress.shardDone(m.shard, seconds);
    },
    onFailed: (shard, message) => {
      failed.push({ shard, error: message.split('\n')[0] });
      progress.message(`shard ${shard} failed: ${message}`);
    },
  });
  if (r.startError) {
    progress.message(`worker failed to start: ${r.startError}`);
    failed.push(...r.notStarted.map((shard) => ({ shard, error: r.startError! })));
  }
}

/**
 * The summary of a fetch run (local or through the queue): counts summed from the stats files of the complete
 * selected shards, speed over the run, the peak RSS of this process and of its workers (`peakRssKb`).
 */
export async function fetchSummary(o: {
  datasetDir: string;
  totalRows: number;
  shards: number;
  selected: readonly number[];
  pending: readonly number[];
  failed: FetchSummary['shards_failed'];
  started: number;
  successes: number;
  peakRssKb?: number;
}): Promise<FetchSummary> {
  const status = Object.fromEntries(SAMPLE_STATUSES.map((s) => [s, 0])) as Record<SampleStatus, number>;
  const reasons: FetchSummary['reasons'] = {};
  let rows = 0;
  for (const s of o.selected) {
    const st = await readStats(shardPaths(o.datasetDir, s).stats);
    if (!st) continue;
    rows += st.count;
    for (const k of SAMPLE_STATUSES) status[k] += st.status[k] ?? 0;
    for (const [k, byReason] of Object.entries(st.reasons ?? {})) {
      const into = (reasons[k] ??= {});
      for (const [reason, n] of Object.entries(byReason)) into[reason] = (into[reason] ?? 0) + n;
    }
  }
  const elapsed = (Date.now() - o.started) / 1000;
  return {
    dataset: o.datasetDir,
    total_rows: o.totalRows,
    shards_total: o.shards,
    shards_selected: o.selected.length,
    shards_run: o.pending.length - o.failed.length,
    shards_skipped: o.selected.length - o.pending.length,
    shards_failed: o.failed,
    rows,
    status,
    reasons,
    elapsed_s: Math.round(elapsed * 100) / 100,
    successes_per_s: Math.round((o.successes / Math.max(elapsed, 1e-3)) * 10) / 10,
    peak_rss_mb: Math.round(Math.max(o.peakRssKb ?? 0, process.resourceUsage().maxRSS) / 1024),
  };
}

/** The `n` most common (status, reason) pairs, most common first, as "failed bad_url 100, fallback http_404 25". */
export function topReasons(reasons: FetchSummary['reasons'], n = 5): string {
  const all = Object.entries(reasons).flatMap(([status, byReason]) =>
    Object.entries(byReason).map(([reason, count]) => ({ status, reason, count })),
  );
  all.sort((a, b) => b.count - a.count || a.status.localeCompare(b.status) || a.reason.localeCompare(b.reason));
  const shown = all.slice(0, n).map((r) => `${r.status} ${r.reason} ${r.count}`);
  if (all.length > n) shown.push(`${all.length - n} other reason(s)`);
  return shown.join(', ');
}

export type { ShardStats };

/** After a fetch: suggests `index compact` when many shard runs are live (a hint only; never fails the fetch). */
async function adviseCompaction(dataRoot: string, say: (m: string) => void): Promise<void> {
  const { compactionAdvice } = await import('../dataset/sample-index.ts');
  const index = openIndex(dataRoot);
  try {
    const advice = await compactionAdvice(index);
    if (advice) say(advice);
  } catch (err) {
    say(`could not count the sample index runs: ${(err as Error).message}`);
  } finally {
    index.close();
  }
}
