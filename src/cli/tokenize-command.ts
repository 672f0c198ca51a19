/** `muse-data tokenize <dataset>` (shards -> Arrow token caches) and `muse-data verify <dataset>`. */
import type { Argv } from 'yargs';
import {
  BACKEND_NAMES,
  initBackend,
  shareTensorflowThreads,
  type BackendName,
  wasmThreadCount,
} from '../runtime/backend.ts';
import { isBuiltinVq, vqReductionFactor } from '../models/registry.ts';
import { runTokenize } from '../tokenize/run-tokenize.ts';
import { parseShardSelection } from '../dataset/shard-selection.ts';
import { completeShardsSync } from '../dataset/complete-shards.ts';
import { formatReport, verifyCaches } from '../tokenize/verify.ts';
import { resolveDataRoot } from '../dataset/data-root.ts';
import { resolveDatasetDir } from '../dataset/data-root.ts';
import { queueJobFlags, retryPolicy } from './queue-flags.ts';
import { UsageError } from './run-cli.ts';

const dataset = (y: Argv) =>
  y
    .positional('dataset', {
      type: 'string',
      demandOption: true,
      describe: 'dataset folder, or a name under the data root (e.g. sample)',
    })
    .option('data-root', { type: 'string', describe: 'data root (default: $MUSE_DATA_ROOT or ./datasets)' });

/** 0,1,2,5 -> "0-2,5". */
function formatRanges(xs: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < xs.length;) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++;
    out.push(i === j ? String(xs[i]) : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

export function tokenizeCommand(y: Argv) {
  return queueJobFlags(dataset(y))
    .option('vq', {
      type: 'string',
      describe:
        'VQGAN folder (config.json + safetensors, open-muse names); default: builtin (vqgan-tiny-seed0, 64 px). ' +
        'Give it twice (base, then super-res VQGAN) for the superres512 stage: both token caches are written side by side, keyed by sample key',
    })
    .option('text', {
      type: 'string',
      default: 'byt5-tiny',
      describe: 'text encoder(s), comma-separated: byt5-tiny, t5:DIR, clip:DIR',
    })
    .option('shards', { type: 'string', describe: 'shards, e.g. 0-99 or 3,5,7-9 (default: every complete shard)' })
    .option('workers', { type: 'number', default: 1, describe: 'worker processes, one shard at a time each' })
    .option('batch', { type: 'number', default: 16, describe: 'images (and captions) per model call' })
    .option('backend', {
      type: 'string',
      choices: BACKEND_NAMES as string[],
      default: 'auto',
      describe: 'tfjs backend',
    })
    .option('image-size', {
      type: 'number',
      describe: 'built-in VQGAN input size (default 64); a --vq model uses its own resolution',
    })
    .option('include-fallbacks', {
      type: 'boolean',
      default: false,
      describe: 'also cache fallback (placeholder) images',
    });
}

export async function tokenizeHandler(a: Record<string, unknown>): Promise<number> {
  const dataRoot = resolveDataRoot(a['data-root'] as string | undefined);
  const datasetDir = resolveDatasetDir(a.dataset as string, dataRoot);
  const batch = a.batch as number;
  if (!Number.isInteger(batch) || batch < 1)
    throw new UsageError(`--batch: expected a positive integer, got ${String(a.batch)}`);
  const workers = a.workers as number;
  if (!Number.isInteger(workers) || workers < 1)
    throw new UsageError(`--workers: expected a positive integer, got ${String(a.workers)}`);
  const text = [
    ...new Set(
      String(a.text)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
  if (text.length === 0) throw new Error('--text: name at least one encoder');
  const vqs: Array<string | undefined> =
    a.vq === undefined ? [undefined] : Array.isArray(a.vq) ? a.vq.map(String) : [String(a.vq)];
  if (vqs.length > 2) throw new Error(`--vq given ${vqs.length} times: at most twice (base and super-res VQGAN)`);
  if (vqs.length === 2 && vqs[0] === vqs[1])
    throw new Error(`--vq ${vqs[0]} given twice: the second --vq is the super-res VQGAN, a different model`);
  if (a['image-size'] !== undefined && vqs.some((v) => !isBuiltinVq(v)))
    throw new UsageError('--image-size applies to the built-in VQGAN only');
  const imageSize = a['image-size'] as number | undefined;
  // Checked before any cache folder (named after the size) is made.
  if (imageSize !== undefined) {
    const factor = await vqReductionFactor('builtin');
    if (!Number.isInteger(imageSize) || imageSize < factor || imageSize % factor) {
      throw new UsageError(
        `--image-size: expected pixels, a positive multiple of ${factor} (the built-in VQGAN's pixels per token), got ${String(imageSize)}`,
      );
    }
  }
  const shards = a.shards === undefined ? undefined : parseShardSelection(String(a.shards));
  if (shards) {
    // Named shards that are not complete (not fetched, or fetch has not finished them) are not tokenized: say so.
    const complete = completeShardsSync(datasetDir);
    const left = shards.filter((s) => !complete.includes(s));
    const have = complete.length ? `complete shards: ${formatRanges(complete)}` : 'it has no complete shard yet';
    if (left.length === shards.length)
      throw new Error(`--shards ${String(a.shards)}: none of them is a complete shard of ${datasetDir} (${have})`);
    if (left.length)
      process.stderr.write(
        `tokenize: --shards ${String(a.shards)}: ${formatRanges(left)} not complete, left out (${have})\n`,
      );
  }
  // One process: MUSE_WASM_THREADS threads for the wasm pool; with --workers N each worker process uses one,
  // and the native TensorFlow pools get cores / N threads each (MUSE_TF_THREADS, inherited by the workers).
  shareTensorflowThreads(workers);
  await initBackend(a.backend as BackendName, { wasmThreads: workers === 1 ? wasmThreadCount() : 1 });
  if (a.queue !== undefined && vqs.length > 1) throw new Error('--queue: tokenize one VQGAN per run (give --vq once)');
  // One pass per VQGAN over the same shards (the same samples, so the caches share keys); the text caches
  // are written by the first pass only.
  for (const [i, vq] of vqs.entries()) {
    const common = {
      datasetDir,
      vq,
      text: i === 0 ? text : [],
      shards,
      batch,
      includeFallbacks: a['include-fallbacks'] as boolean,
      imageSize,
      dataRoot,
    };
    const s =
      a.queue !== undefined
        ? await (
            await import('../queue/tokenize-through-queue.ts')
          ).tokenizeThroughQueue({ ...common, queueUrl: a.queue as string, retry: retryPolicy(a) })
        : await runTokenize({ ...common, workers });
    process.stdout.write(
      `tokenize ${datasetDir}: ${s.shards_done.length} shard(s) tokenized (${s.samples} samples), ${s.shards_skipped.length} already done; ` +
        `caches tokens/${s.vq_id}${s.text_ids.map((t) => `, text/${t}`).join('')}\n`,
    );
  }
  return 0;
}

export const verifyCommand = dataset;

export async function verifyHandler(a: Record<string, unknown>): Promise<number> {
  const dataRoot = resolveDataRoot(a['data-root'] as string | undefined);
  const datasetDir = resolveDatasetDir(a.dataset as string, dataRoot);
  const report = await verifyCaches(datasetDir, dataRoot);
  process.stdout.write(formatReport(datasetDir, report));
  return report.problems.length || report.caches.length === 0 ? 1 : 0;
}
