/** Builds what a shard job needs from a resolved pipeline: source, downloader, image processor, filter. */
import type { PipelineConfig } from './config-types.ts';
import type { ShardJobContext } from './shard-job.ts';
import { createSource } from '../sources/index.ts';
import { createDownloader } from '../fetch/downloader.ts';
import { configureSharp, createImageProcessor } from '../image/index.ts';
import { prepareRecordFilter } from '../filters/index.ts';
import { openFetchIndex, type FetchIndex } from '../index-db/fetch-index.ts';
import { RowsInFlight } from './in-flight.ts';
import pLimit from 'p-limit';
import type { LiveStatus } from './progress.ts';

export interface ContextOptions {
  cfg: PipelineConfig;
  datasetDir: string;
  dataRoot: string;
  projectRoot: string;
  /** Origin of the bundled sample server, when the pipeline has `local_server`. */
  localOrigin?: string;
  /** `fetch --retry-status`: statuses or reasons whose rows complete shards fetch again. */
  retryStatuses?: string[];
}

/**
 * Images processed at once per process. sharp runs each step on libuv's thread pool (UV_THREADPOOL_SIZE, 4 by
 * default), which file writes and DNS lookups share: with every row's image queued there, the shard's writes
 * waited behind all of them (the ordered writer crawled at a few rows/s, then caught up in a burst at the end).
 * One thread is left free; libvips still uses every core inside each image.
 */
const IMAGES_AT_ONCE = Math.max(1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1);

/**
 * `opened`: a source the caller has already opened (the parent of a fetch), so its files are not read twice.
 * `useIndex`: opt-out lookups to use instead of the data root's index (a queue worker's snapshot, src/queue/).
 */
export async function createShardContext(
  o: ContextOptions,
  opened?: Pick<ShardJobContext, 'source' | 'totalRows'>,
  useIndex?: FetchIndex,
): Promise<ShardJobContext & { live(): LiveStatus; close(): Promise<void> }> {
  const source = opened?.source ?? createSource(o.cfg.input, { dataRoot: o.dataRoot, projectRoot: o.projectRoot });
  const totalRows = opened?.totalRows ?? (await source.open()).totalRows;
  const prefix = o.cfg.local_server?.url_prefix;
  const origin = o.localOrigin;
  const rewriteUrl =
    prefix && origin
      ? (url: string) => (url.startsWith(prefix) ? origin + '/' + url.slice(prefix.length) : url)
      : undefined;
  const downloader = createDownloader(o.cfg.download, { rewriteUrl });
  configureSharp(); // every image is seen once: libvips' operation cache would only hold memory
  // Registers the output folder as a dataset of the data root (idempotent: every worker does it too).
  const index = useIndex ?? openFetchIndex(o.dataRoot, o.cfg.name, o.datasetDir);
  const inFlight = new RowsInFlight();
  const processImage = createImageProcessor(o.cfg.image);
  const imageSlot = pLimit(IMAGES_AT_ONCE);
  return {
    cfg: o.cfg,
    source,
    totalRows,
    datasetDir: o.datasetDir,
    downloader,
    processImage: (bytes) => imageSlot(() => processImage(bytes)),
    filter: await prepareRecordFilter(o.cfg.filters, { baseDir: o.projectRoot }),
    index,
    inFlight,
    retryStatuses: o.retryStatuses ? new Set(o.retryStatuses) : undefined,
    live: () => {
      const rows = inFlight.snapshot();
      const d = downloader.status();
      return {
        in_flight: rows.rows,
        waiting_on_slow_origins: d.waitingOnSlowOrigins,
        oldest_ms: rows.oldest_ms,
        cut_offs: d.cutOffs,
      };
    },
    close: async () => {
      index.close();
      await downloader.close();
    },
  };
}
