/** `muse-data fetch [pipeline] [flags]`: flags in img2dataset's spirit override the pipeline file. */
import path from 'node:path';
import type { Argv } from 'yargs';
import { deepMerge, loadPipelineFile, resolvePipeline, resolvePipelinePath } from '../pipeline/config.ts';
import { DEAD_LINK_MODES } from '../pipeline/config-types.ts';
import { INPUT_FORMATS } from '../sources/formats.ts';
import { ENCODE_FORMATS } from '../image/encode.ts';
import { RESIZE_MODES } from '../image/geometry.ts';
import { runFetch, topReasons } from '../pipeline/run-fetch.ts';
import { LOG_FORMATS, type LogFormat } from '../pipeline/progress.ts';
import { PROJECT_ROOT, resolveDataRoot } from '../dataset/data-root.ts';
import { shardsDir } from '../dataset/names.ts';
import { queueFlags, retryPolicy, shardModulo } from './queue-flags.ts';

export function fetchCommand(y: Argv) {
  return queueFlags(y)
    .positional('pipeline', {
      type: 'string',
      describe:
        'a pipeline in pipelines/ (laion400m, laion2b-en|laion, coyo700m, cc12m, imagenet, sample) or a YAML file',
    })
    .option('shards', { type: 'string', describe: 'shard indices to run, e.g. 0-99 or 3,5,7-9 (default: all)' })
    .option('workers', { type: 'number', default: 1, describe: 'shards run in parallel processes' })
    .option('out', { type: 'string', describe: 'output dataset folder (default: <data root>/<name>)' })
    .option('name', {
      type: 'string',
      describe:
        "the dataset's name in the index (default: the output folder's name; the pipeline's name, or the first --input file's, picks the default folder)",
    })
    .option('data-root', { type: 'string', describe: 'data root (default: $MUSE_DATA_ROOT or ./datasets)' })
    .option('log-format', {
      choices: LOG_FORMATS,
      default: 'auto' as const,
      describe: 'progress: live bar on a terminal, plain lines, or JSON lines',
    })
    .option('retry-status', {
      type: 'string',
      describe:
        'in complete shards, fetch again only the rows with these statuses or reasons, e.g. host_unresponsive (comma list)',
    })
    .option('progress-interval', {
      type: 'number',
      default: 5,
      describe: 'seconds between plain or JSON progress lines',
    })
    .option('input', {
      type: 'string',
      array: true,
      describe: 'metadata file(s) or glob(s); replaces the pipeline input files',
    })
    .option('input-format', { choices: INPUT_FORMATS })
    .option('header', { type: 'boolean', describe: 'tsv/csv: first line is a header (--no-header for CC12M/CC3M)' })
    .option('columns', { type: 'string', describe: 'tsv/csv without header: column names in order, e.g. url,caption' })
    .option('url-col', { type: 'string' })
    .option('caption-col', { type: 'string' })
    .option('image-size', { type: 'number' })
    .option('resize-mode', { choices: RESIZE_MODES })
    .option('resize-only-if-bigger', { type: 'boolean' })
    .option('encode-format', { choices: ENCODE_FORMATS })
    .option('encode-quality', { type: 'number' })
    .option('min-image-size', { type: 'number' })
    .option('max-aspect-ratio', { type: 'number' })
    .option('max-image-area', { type: 'number' })
    .option('samples-per-shard', { type: 'number' })
    .option('dead-links', { choices: DEAD_LINK_MODES })
    .option('allow-private-network', {
      type: 'boolean',
      describe: 'allow URLs that resolve to private/loopback addresses (local data only)',
    })
    .option('concurrency', { type: 'number', describe: 'parallel downloads per worker' })
    .option('connect-timeout', { type: 'number', describe: 'seconds to connect (DNS, TCP, TLS); default 5' })
    .option('first-byte-timeout', {
      type: 'number',
      describe: 'seconds from a request to its response headers; default 5',
    })
    .option('timeout', { type: 'number', describe: 'seconds for a whole request; default 10' })
    .option('retries', {
      type: 'number',
      describe: 'extra attempts for resets, 5xx, 429 and timeouts on origins not already timing out; default 2',
    })
    .option('origin-cutoff', {
      type: 'number',
      describe:
        'consecutive timeouts/refusals that cut an origin off (its other rows end host_unresponsive); 0 = never; default 5',
    })
    .option('origin-cooldown', {
      type: 'number',
      describe: 'seconds before a cut-off origin is probed again; default 60',
    })
    .option('per-origin-concurrency', {
      type: 'number',
      describe: 'requests at once to one origin, per worker; default 32',
    })
    .option('user-agent-token', { type: 'string' })
    .option('disallowed-header-directives', {
      type: 'string',
      describe: 'comma list of X-Robots-Tag directives that forbid use ("" for none)',
    });
}

type FetchArgs = Record<string, unknown> & { pipeline?: string };

/** Command-line flags as a partial pipeline document, merged over the pipeline file. */
export function flagsToOverrides(a: FetchArgs): Record<string, unknown> {
  const input: Record<string, unknown> = {
    files: a.input,
    format: a['input-format'],
    header: a.header,
    columns: typeof a.columns === 'string' ? a.columns.split(',').map((s) => s.trim()) : undefined,
    url_col: a['url-col'],
    caption_col: a['caption-col'],
  };
  const image: Record<string, unknown> = {
    size: a['image-size'],
    resize_mode: a['resize-mode'],
    resize_only_if_bigger: a['resize-only-if-bigger'],
    encode_format: a['encode-format'],
    encode_quality: a['encode-quality'],
    min_image_size: a['min-image-size'],
    max_aspect_ratio: a['max-aspect-ratio'],
    max_image_area: a['max-image-area'],
  };
  const download: Record<string, unknown> = {
    allow_private_network: a['allow-private-network'],
    concurrency: a.concurrency,
    connect_timeout_s: a['connect-timeout'],
    first_byte_timeout_s: a['first-byte-timeout'],
    timeout_s: a.timeout,
    retries: a.retries,
    origin_cutoff_after: a['origin-cutoff'],
    origin_cooldown_s: a['origin-cooldown'],
    per_origin_concurrency: a['per-origin-concurrency'],
    user_agent_token: a['user-agent-token'],
    disallowed_header_directives:
      typeof a['disallowed-header-directives'] === 'string'
        ? a['disallowed-header-directives']
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : undefined,
  };
  const drop = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const out: Record<string, unknown> = { samples_per_shard: a['samples-per-shard'], dead_links: a['dead-links'] };
  if (Object.keys(drop(input)).length) out.input = drop(input);
  if (Object.keys(drop(image)).length) out.image = drop(image);
  if (Object.keys(drop(download)).length) out.download = drop(download);
  return drop(out);
}

function retryStatusList(a: FetchArgs): string[] | undefined {
  if (a['retry-status'] === undefined) return undefined;
  const list = String(a['retry-status'])
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (!list.length)
    throw new Error(
      '--retry-status: expected statuses or reasons, e.g. host_unresponsive or failed,first_byte_timeout',
    );
  return list;
}

function progressInterval(a: FetchArgs): number {
  const s = (a['progress-interval'] as number | undefined) ?? 5;
  if (!(s > 0)) throw new Error(`--progress-interval: expected seconds > 0, got ${String(a['progress-interval'])}`);
  return s;
}

/** `shots-2024.parquet` -> `shots-2024`; a glob's wildcards are dropped. */
function inputStem(file: string | undefined): string {
  const base = path.basename(file ?? 'input').replace(/[*?[\]{}]/g, '');
  const stem = base.slice(0, base.indexOf('.') > 0 ? base.indexOf('.') : undefined);
  return stem || 'input';
}

function checkDatasetName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new Error(
      `--name ${JSON.stringify(name)}: a dataset name is letters, digits, '.', '_' and '-' (no '/' or spaces), starting with a letter or digit`,
    );
  }
}

export async function fetchHandler(a: FetchArgs): Promise<number> {
  const projectRoot = PROJECT_ROOT;
  const dataRoot = resolveDataRoot(a['data-root'] as string | undefined);
  let raw: Record<string, unknown> = {};
  let where = 'command line';
  if (a.pipeline) {
    const file = resolvePipelinePath(a.pipeline, projectRoot);
    raw = await loadPipelineFile(file);
    where = file;
  } else if (!a.input) {
    throw new Error('fetch needs a pipeline name (e.g. `muse-data fetch sample`) or --input FILE');
  }
  const overrides = flagsToOverrides(a);
  // --input files given on the command line are relative to the current folder, not the data root.
  if (overrides.input && (overrides.input as Record<string, unknown>).files) {
    (overrides.input as Record<string, unknown>).files = (
      (overrides.input as Record<string, unknown>).files as string[]
    ).map((f) => path.resolve(f));
  }
  const cfg = resolvePipeline(deepMerge(raw, overrides), where);
  // The dataset's name is unique in the index: --name, else the output folder's name. Without --out the folder is
  // <data root>/<--name, the pipeline's name, or the first input file's name>.
  const nameFlag = a.name as string | undefined;
  if (nameFlag !== undefined) checkDatasetName(nameFlag);
  const folderName = nameFlag ?? (a.pipeline ? cfg.name : inputStem((cfg.input.files as string[])[0]));
  const datasetDir = path.resolve((a.out as string | undefined) ?? path.join(dataRoot, folderName));
  cfg.name = nameFlag ?? path.basename(datasetDir);
  const common = {
    cfg,
    datasetDir,
    dataRoot,
    projectRoot,
    nameGiven: nameFlag !== undefined,
    shards: a.shards as string | undefined,
    shardModulo: shardModulo(a),
    logFormat: (a['log-format'] as LogFormat) ?? 'auto',
    progressIntervalS: progressInterval(a),
  };
  const retryStatuses = retryStatusList(a);
  if (retryStatuses && a.queue !== undefined)
    throw new Error('--retry-status runs shards in this process or its workers; it does not go with --queue');
  const summary =
    a.queue !== undefined
      ? await (
          await import('../queue/fetch-through-queue.ts')
        ).fetchThroughQueue({ ...common, queueUrl: a.queue as string, retry: retryPolicy(a) })
      : await runFetch({ ...common, retryStatuses, workers: Math.max(1, Math.floor((a.workers as number) ?? 1)) });
  const s = summary.status;
  process.stderr.write(
    `done: ${summary.rows} rows in ${summary.shards_selected} shard(s) (${summary.shards_run} run, ${summary.shards_skipped} already complete) in ${summary.elapsed_s}s — ` +
      `ok ${s.ok}, fallback ${s.fallback}, filtered ${s.filtered}, opted_out ${s.opted_out}, duplicate ${s.duplicate}, failed ${s.failed}; ` +
      `${summary.successes_per_s} successes/s\n`,
  );
  if (summary.cut_origins?.length) {
    process.stderr.write(
      `origins cut off after repeated timeouts or refusals (their other rows ended host_unresponsive without a request): ` +
        summary.cut_origins
          .map((c) => `${c.origin} at ${c.at} (${c.rows_skipped} rows${c.still_cut ? '' : ', answered again later'})`)
          .join(', ') +
        `; retry those rows later with --retry-status host_unresponsive\n`,
    );
  }
  if (a['log-format'] === 'json') process.stdout.write(JSON.stringify({ event: 'summary', ...summary }) + '\n');
  if (summary.shards_failed.length) {
    process.stderr.write(
      `${summary.shards_failed.length} shard(s) failed and will be redone by a rerun: ${summary.shards_failed.map((f) => `${f.shard} (${f.error})`).join('; ')}\n`,
    );
    return 1;
  }
  if (summary.rows > 0 && s.ok === 0) {
    // Nothing usable came out (a wrong column, garbage input, no network ...): say why and fail the command.
    process.stderr.write(
      `no row of ${summary.rows} was fetched successfully; most common reasons (status reason count): ${topReasons(summary.reasons)}. ` +
        `Per-row errors are in ${path.join(shardsDir(datasetDir), '*.arrow')} (columns status, reason, error).\n`,
    );
    return 1;
  }
  return 0;
}
