/**
 * One shard: input rows [i*S, (i+1)*S) -> filters -> download -> image -> tar + manifest + stats.
 * Rows are processed concurrently but written in key order through a bounded window, so memory stays bounded
 * and the output does not depend on which download finished first. A row holds one of the downloader's slots
 * (`download.concurrency` per process) from its download to its encoded image, except while it only waits on
 * the network (src/fetch/slots.ts): a hung request then costs a window place, not a slot.
 */
import { readFile, rm } from 'node:fs/promises';
import type { PipelineConfig } from './config-types.ts';
import type { Source, SourceRecord } from '../sources/record.ts';
import type { Downloader } from '../fetch/downloader.ts';
import type { Lease } from '../fetch/slots.ts';
import type { RowsInFlight } from './in-flight.ts';
import { KeptRows } from './retry-rows.ts';
import { isShardComplete } from '../dataset/complete-shards.ts';
import type { ImageResult } from '../image/index.ts';
import { fallbackImage } from '../image/index.ts';
import type { FilterVerdict } from '../filters/index.ts';
import type { SampleOutcome, SampleStatus } from '../shards/outcome.ts';
import { sampleKey, shardCount, shardPaths } from '../dataset/names.ts';
import { ShardTarWriter } from '../shards/tar-writer.ts';
import { manifestRow, writeManifest, type ManifestRow } from '../dataset/manifest.ts';
import { summarize, writeStats, type ShardStats } from '../dataset/stats.ts';
import type { FetchIndex } from '../index-db/fetch-index.ts';
import { writeRun } from '../index-db/sample-runs.ts';
import { urlHashOrNull } from '../optout/normalize-url.ts';

export interface ShardJobContext {
  cfg: PipelineConfig;
  source: Source;
  totalRows: number;
  datasetDir: string;
  downloader: Downloader;
  processImage: (bytes: Buffer) => Promise<ImageResult>;
  filter: (rec: SourceRecord) => FilterVerdict;
  /** The data root's index: opt-out tests per row. */
  index?: FetchIndex;
  /** Called once per input row as soon as its outcome is final (so not in key order; it is written later, in order). */
  onRow?: (status: SampleStatus, shard: number) => void;
  /** Rows under way in this process (for the progress line). */
  inFlight?: RowsInFlight;
  /**
   * `fetch --retry-status`: in a complete shard, only rows with one of these statuses or reasons are fetched
   * again; the others are copied from the shard as they are.
   */
  retryStatuses?: ReadonlySet<string>;
}

/**
 * Rows that may be in flight or waiting to be written, at least: so many rows behind one stuck on a hung origin
 * still download and process (a row is stuck at most its attempts' deadlines and back-offs). A finished row
 * waiting here holds only its encoded image (~30 KB at 256 px JPEG): ≤ ~60 MB per shard.
 */
const WRITE_WINDOW_MIN = 2048;

export async function runShard(shard: number, ctx: ShardJobContext): Promise<ShardStats> {
  const { cfg } = ctx;
  const S = cfg.samples_per_shard;
  const start = shard * S;
  const end = Math.min(start + S, ctx.totalRows);
  if (start >= end)
    throw new Error(
      `shard ${shard} is out of range: the input has ${ctx.totalRows} rows (${shardCount(ctx.totalRows, S)} shards)`,
    );
  const paths = shardPaths(ctx.datasetDir, shard);
  const kept =
    ctx.retryStatuses && isShardComplete(ctx.datasetDir, shard)
      ? await KeptRows.open(paths.manifest, paths.tar, ctx.retryStatuses)
      : undefined;
  // A half-written shard from an interrupted run is redone from scratch: stats last, so remove it first. A shard
  // being retried stays complete (old files) until its new files are about to replace them.
  if (!kept) await rm(paths.stats, { force: true });

  const startTime = new Date();
  const timings = { optout_ms: 0, filter_ms: 0, download_ms: 0, image_ms: 0, write_ms: 0, index_ms: 0 };
  /** Sample key -> url_hash computed for the opt-out test, reused by the index run. */
  const urlHashes = new Map<string, Buffer>();
  // Finished rows wait here until every earlier row is done. Sized well beyond the download concurrency so a
  // slow link at the head does not stall the rest; how many run at once is bounded by the downloader's slots.
  const window = Math.max(cfg.download.concurrency * 4, WRITE_WINDOW_MIN);
  const tar = await ShardTarWriter.create(paths.tar);
  const rows: ManifestRow[] = [];
  const queue: Array<Promise<SampleOutcome | { kept: ManifestRow }>> = [];

  const write = async (o: SampleOutcome | { kept: ManifestRow }) => {
    const t = performance.now();
    if ('kept' in o) {
      if (o.kept.status === 'ok' || o.kept.status === 'fallback')
        await tar.addMembers(o.kept.key, await kept!.members(o.kept.key));
      rows.push(o.kept);
    } else {
      await tar.add(o);
      rows.push(manifestRow(o));
    }
    timings.write_ms += performance.now() - t;
  };
  const finished = (o: SampleOutcome) => {
    ctx.onRow?.(o.status, shard);
    return o;
  };

  for await (const rec of ctx.source.rows(start, end)) {
    const key = sampleKey(shard, rec.row - start, S);
    const previous = kept?.get(key);
    if (previous) ctx.onRow?.(previous.status, shard);
    queue.push(
      previous ? Promise.resolve({ kept: previous }) : processRow(rec, key, ctx, timings, urlHashes).then(finished),
    );
    while (queue.length >= window) await write(await queue.shift()!);
  }
  while (queue.length) await write(await queue.shift()!);
  await kept?.close();
  if (rows.length !== end - start) {
    throw new Error(`shard ${shard}: expected ${end - start} input rows, the source gave ${rows.length}`);
  }

  if (kept) await rm(paths.stats, { force: true });
  const bytesWritten = await tar.finish();
  await writeManifest(paths.manifest, rows);
  // Before the stats file: a shard counts as complete only once its index run (sorted by URL hash) is beside it.
  const ti = performance.now();
  await writeRun(paths.indexRun, rows, shard, (r) => urlHashes.get(r.key));
  timings.index_ms += performance.now() - ti;
  const endTime = new Date();
  const stats: ShardStats = {
    shard,
    ...summarize(rows),
    bytes_written: bytesWritten,
    start_time: startTime.toISOString(),
    end_time: endTime.toISOString(),
    duration_s: (endTime.getTime() - startTime.getTime()) / 1000,
    timings_ms: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])),
  };
  await writeStats(paths.stats, stats);
  return stats;
}

/** Everything that can happen to one row. Never throws: an unexpected error becomes a `failed` outcome. */
async function processRow(
  rec: SourceRecord,
  key: string,
  ctx: ShardJobContext,
  timings: Record<string, number>,
  urlHashes: Map<string, Buffer>,
): Promise<SampleOutcome> {
  const base: SampleOutcome = {
    key,
    row: rec.row,
    url: rec.url || rec.localPath || '',
    caption: rec.caption,
    cls: rec.cls,
    meta: rec.meta,
    status: 'failed',
    reason: null,
    error: null,
  };
  // From the download to the encoded image a row holds one slot, lent out while the download only waits.
  let lease: Lease | undefined;
  let done: (() => void) | undefined;
  try {
    if (rec.error) return { ...base, reason: 'bad_row', error: rec.error };

    let t = performance.now();
    // Hashed once: for the opt-out test here and for the shard's index run (the row's url is rec.url then).
    const uh = rec.url ? urlHashOrNull(rec.url) : null;
    if (uh) urlHashes.set(key, uh);
    const optedOut = uh !== null && !!ctx.index?.urlHashOptedOut(uh);
    timings.optout_ms += performance.now() - t;
    if (optedOut)
      return { ...base, status: 'opted_out', reason: 'optout_index', error: 'the URL is in the opt-out index' };

    t = performance.now();
    const verdict = ctx.filter(rec);
    timings.filter_ms += performance.now() - t;
    if (!verdict.ok) return { ...base, status: 'filtered', reason: verdict.rule, error: verdict.reason };
    base.caption = verdict.caption;

    lease = await ctx.downloader.lease();
    done = ctx.inFlight?.start();
    t = performance.now();
    const got = await fetchBytes(rec, ctx, lease);
    timings.download_ms += performance.now() - t;
    if (!got.ok) {
      if (got.optedOut) return { ...base, status: 'opted_out', reason: got.reason, error: got.error };
      return withFallback(base, got.reason, got.error, ctx);
    }

    t = performance.now();
    const img = await ctx.processImage(got.bytes);
    timings.image_ms += performance.now() - t;
    const sized = {
      ...base,
      bytes: got.bytes.length,
      originalWidth: img.originalWidth,
      originalHeight: img.originalHeight,
    };
    if (!img.ok) {
      if (img.status === 'filtered') return { ...sized, status: 'filtered', reason: img.reason, error: img.error };
      return withFallback(sized, img.reason, img.error, ctx);
    }
    if (ctx.index?.imageOptedOut(img.sha256)) {
      return {
        ...sized,
        status: 'opted_out',
        reason: 'optout_image',
        error: 'the image (sha256) is in the opt-out index',
        sha256: img.sha256,
        phash: img.phash,
      };
    }
    return {
      ...sized,
      status: 'ok',
      image: { data: img.data, ext: img.ext, width: img.width, height: img.height },
      sha256: img.sha256,
      phash: img.phash,
    };
  } catch (err) {
    return { ...base, status: 'failed', reason: 'internal_error', error: (err as Error).stack ?? String(err) };
  } finally {
    lease?.end();
    done?.();
  }
}

type Fetched = { ok: true; bytes: Buffer } | { ok: false; reason: string; error: string; optedOut: boolean };

async function fetchBytes(rec: SourceRecord, ctx: ShardJobContext, lease: Lease): Promise<Fetched> {
  if (rec.localPath) {
    try {
      return { ok: true, bytes: await readFile(rec.localPath) };
    } catch (err) {
      return { ok: false, reason: 'read_error', error: `${rec.localPath}: ${(err as Error).message}`, optedOut: false };
    }
  }
  return ctx.downloader.get(rec.url, lease);
}

/** A dead link or broken image: a solid-colour stand-in (`--dead-links fallback`) or nothing in the tar (`skip`). */
async function withFallback(
  o: SampleOutcome,
  reason: string,
  error: string,
  ctx: ShardJobContext,
): Promise<SampleOutcome> {
  if (ctx.cfg.dead_links === 'skip') return { ...o, status: 'failed', reason, error };
  const fb = await fallbackImage(o.key, ctx.cfg.image);
  return {
    ...o,
    status: 'fallback',
    reason,
    error,
    image: { data: fb.data, ext: fb.ext, width: fb.width, height: fb.height },
  };
}
