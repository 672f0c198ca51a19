/**
 * `muse-data tokenize`: complete shards -> `tokens/<vq-id>/` and `text/<encoder-id>/` Arrow caches.
 * Per shard every cache file is written atomically, then its manifest entry; a shard already listed with its
 * file present is skipped, so a rerun (after kill -9 too) redoes only unfinished shards. With `workers` > 1 the
 * shards run in worker processes (./worker.ts) that write the cache files; this process alone writes the manifests.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { tf, type BackendName } from '../runtime/backend.ts';
import { readData } from '../runtime/read.ts';
import { encodeFloat16 } from '../runtime/float16.ts';
import { shardName, shardPaths } from '../dataset/names.ts';
import { imageOf, readTarSamples } from '../shards/tar-reader.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import {
  EMPTY_FILE,
  arrowFileDamage,
  cacheDir,
  cacheShardPath,
  readCacheManifest,
  tableBytes,
  textTable,
  tokenTable,
  writeCacheManifest,
  type CacheKind,
  type CacheManifest,
} from '../dataset/cache-format.ts';
import { loadText, loadVq, type LoadedText, type LoadedVq } from '../models/registry.ts';
import { completeShards, selectSamples, usableRule } from '../dataset/select.ts';
import { formatDuration } from '../pipeline/progress.ts';
import { withDatasetLock } from '../dataset/lock.ts';
import { imageToFloats } from '../image/to-floats.ts';
import { runShardPool } from '../runtime/shard-pool.ts';
import { concatFloat32 } from '../util/typed-arrays.ts';

export interface TokenizeOptions {
  datasetDir: string;
  /** undefined / 'builtin' or a folder. */
  vq?: string;
  /** Text encoder specs (byt5-tiny, t5:DIR, clip:DIR). */
  text: string[];
  /** Shard indices to consider (`--shards`, parseShardSelection); default every complete shard. */
  shards?: number[];
  batch: number;
  includeFallbacks: boolean;
  imageSize?: number;
  /** Data root whose index.sqlite lists opt-outs not yet applied to the shards (skipped too). */
  dataRoot?: string;
  log?: (msg: string) => void;
  /** Worker processes (default 1: this process). */
  workers?: number;
  /**
   * Runs the pending shards elsewhere (the queue, src/queue/) instead of here or in worker processes: called with
   * the shards to do, the function that records a finished shard in the manifests, and the keys to leave out.
   */
  runPending?: (
    pending: number[],
    record: (r: ShardResult) => Promise<void>,
    exclude: ReadonlySet<string>,
  ) => Promise<void>;
}

/** What a worker is initialised with: the options and the backend to use (the parent's). */
export type WorkerOptions = Omit<TokenizeOptions, 'log' | 'runPending'> & { backend: BackendName };
export type ToTokenizeWorker =
  { type: 'init'; options: WorkerOptions } | { type: 'shard'; shard: number } | { type: 'stop' };
export type FromTokenizeWorker =
  | { type: 'hello' }
  | { type: 'ready' }
  | { type: 'done'; shard: number; result: ShardResult }
  | { type: 'error'; shard: number | null; message: string };

export interface TokenizeSummary {
  vq_id: string;
  text_ids: string[];
  shards_done: number[];
  shards_skipped: number[];
  samples: number;
}

export async function runTokenize(o: TokenizeOptions): Promise<TokenizeSummary> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  // One rewriter per dataset at a time (src/dataset/lock.ts): waits for an apply or dedup --apply of this dataset.
  return withDatasetLock(o.datasetDir, 'tokenize', () => tokenizeLocked(o, log), { onWait: log });
}

async function tokenizeLocked(o: TokenizeOptions, log: (m: string) => void): Promise<TokenizeSummary> {
  const ctx = await loadTokenizeContext(o);
  try {
    const { vq, texts } = ctx;
    const caches = [
      await openCache(o.datasetDir, 'vq', vq.id, vq.name, vq.config, vq.weightsSha256, o.includeFallbacks),
      ...(await Promise.all(
        texts.map((t) => openCache(o.datasetDir, 'text', t.id, t.name, t.config, t.weightsSha256, o.includeFallbacks)),
      )),
    ];
    for (const t of texts) await writeEmptyEmbedding(o.datasetDir, t);
    const summary: TokenizeSummary = {
      vq_id: vq.id,
      text_ids: texts.map((t) => t.id),
      shards_done: [],
      shards_skipped: [],
      samples: 0,
    };
    const pending: number[] = [];
    for (const shard of await completeShards(o.datasetDir, o.shards)) {
      // A listed file that is damaged (empty, truncated) is redone: a rerun repairs what verify reports unreadable.
      const done = caches.every(
        (c) =>
          c.manifest.shards[shardName(shard)] &&
          !arrowFileDamage(cacheShardPath(o.datasetDir, c.kind, c.manifest.id, shard)),
      );
      if (done) summary.shards_skipped.push(shard);
      else pending.push(shard);
    }
    // Only this process writes the manifests: a shard's files are in place (atomically) before its entries.
    const record = async (r: ShardResult) => {
      for (const c of caches) {
        const entry = r.entries[cacheKey(c.kind, c.manifest.id)];
        if (!entry) throw new Error(`shard ${shardName(r.shard)}: no result for cache ${c.kind}/${c.manifest.id}`);
        c.manifest.shards[shardName(r.shard)] = entry;
        c.manifest.shards = sortedShards(c.manifest.shards);
        await writeCacheManifest(cacheDir(o.datasetDir, c.kind, c.manifest.id), c.manifest);
      }
      summary.shards_done.push(r.shard);
      summary.samples += r.samples;
      const done = summary.shards_done.length;
      const elapsed = (Date.now() - started) / 1000;
      const eta = formatDuration((elapsed / done) * (pending.length - done));
      log(
        `tokenize ${shardName(r.shard)}: ${r.samples} samples in ${r.seconds.toFixed(1)}s (${(r.samples / Math.max(r.seconds, 1e-3)).toFixed(1)} samples/s) | ` +
          `shards ${done}/${pending.length}, ${(summary.samples / Math.max(elapsed, 1e-3)).toFixed(1)} samples/s overall, ETA ${eta}`,
      );
    };
    const started = Date.now();
    log(
      `tokenize ${path.basename(o.datasetDir)}: ${pending.length} shard(s) to do, ${summary.shards_skipped.length} already done (vq ${vq.id}; text ${summary.text_ids.join(', ') || 'none'})`,
    );
    const workers = Math.min(o.workers ?? 1, pending.length);
    if (o.runPending) {
      ctx.dispose(); // the queue's workers load their own models
      await o.runPending(pending, record, ctx.exclude);
    } else if (workers <= 1) {
      for (const shard of pending) await record(await tokenizeShard(shard, ctx));
    } else {
      ctx.dispose(); // the workers load their own models
      await runInWorkers(pending, workers, o, record);
    }
    summary.shards_done.sort((a, b) => a - b);
    return summary;
  } finally {
    ctx.dispose();
  }
}

/** The per-process state a shard job needs: models, options and exclusions. */
export interface TokenizeContext {
  o: TokenizeOptions;
  vq: LoadedVq;
  texts: LoadedText[];
  exclude: Set<string>;
  dispose(): void;
}

export async function loadTokenizeContext(o: TokenizeOptions): Promise<TokenizeContext> {
  const vq = await loadVq(o.vq, o.imageSize);
  const texts: LoadedText[] = [];
  let disposed = false;
  const dispose = () => {
    if (disposed) return;
    disposed = true;
    vq.model.dispose();
    for (const t of texts) t.encoder.dispose();
  };
  try {
    for (const spec of o.text) texts.push(await loadText(spec));
    const rule = await usableRule(o.datasetDir, { dataRoot: o.dataRoot, includeFallbacks: o.includeFallbacks });
    return { o, vq, texts, exclude: rule.exclude, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}

export interface ShardResult {
  shard: number;
  samples: number;
  seconds: number;
  /** By cacheKey(kind, id): the manifest entry of the file just written. */
  entries: Record<string, { samples: number; sha256_of_file: string }>;
}

export const cacheKey = (kind: CacheKind, id: string) => `${kind}:${id}`;

/** Encodes one shard and writes its cache files atomically; the manifests are left to the caller. */
export async function tokenizeShard(shard: number, ctx: TokenizeContext): Promise<ShardResult> {
  const { o, vq, texts } = ctx;
  const t0 = performance.now();
  const samples = await selectSamples(o.datasetDir, shard, {
    includeFallbacks: o.includeFallbacks,
    exclude: ctx.exclude,
  });
  const keys = samples.map((s) => s.key);
  const files: Array<[CacheKind, string, Uint8Array]> = [
    [
      'vq',
      vq.id,
      tableBytes(
        tokenTable({
          keys,
          tokens: await encodeImages(o.datasetDir, shard, keys, vq, o.batch),
          gridH: vq.gridH,
          gridW: vq.gridW,
          codebookSize: vq.model.config.numEmbeddings,
          vqId: vq.id,
        }),
      ),
    ],
  ];
  for (const t of texts)
    files.push([
      'text',
      t.id,
      tableBytes(
        textTable({
          keys,
          ...(await encodeTexts(
            t,
            samples.map((s) => s.caption),
            o.batch,
          )),
          dim: t.encoder.dim,
          pooledDim: t.encoder.pooledDim,
          encoderId: t.id,
        }),
      ),
    ]);
  const entries: ShardResult['entries'] = {};
  for (const [kind, id, bytes] of files) {
    await writeFileAtomic(cacheShardPath(o.datasetDir, kind, id, shard), bytes);
    entries[cacheKey(kind, id)] = { samples: keys.length, sha256_of_file: sha256(bytes) };
  }
  return { shard, samples: keys.length, seconds: (performance.now() - t0) / 1000, entries };
}

/**
 * `--workers N`: shards run in N processes (src/tokenize/worker.ts), one shard at a time each; they write the
 * cache files and report the entries, and this process alone records them in the manifests.
 */
async function runInWorkers(
  pending: number[],
  n: number,
  o: TokenizeOptions,
  record: (r: ShardResult) => Promise<void>,
): Promise<void> {
  const { log: _log, runPending: _runPending, ...rest } = o;
  const options: WorkerOptions = { ...rest, workers: 1, backend: tf.getBackend() as BackendName };
  const errors: string[] = [];
  // the pool hands finished shards over one at a time: manifest writes are serialised, in the order shards finish
  const r = await runShardPool<WorkerOptions, Extract<FromTokenizeWorker, { type: 'done' }>>({
    workerFile: new URL('./worker.ts', import.meta.url),
    workers: n,
    shards: pending,
    init: options,
    stopOnFailure: true,
    onDone: (m) => record(m.result),
    onFailed: (shard, message) => errors.push(`shard ${shardName(shard)}: ${message.split('\n')[0]}`),
  });
  if (r.startError) errors.push(`tokenize worker failed to start: ${r.startError}`);
  if (!errors.length && r.notStarted.length)
    errors.push(`tokenize workers exited with ${r.notStarted.length} shard(s) not run`);
  if (errors.length) throw new Error(errors.join('\n'));
}

interface OpenCache {
  kind: CacheKind;
  manifest: CacheManifest;
}

/** Reads or starts a cache's manifest; refuses weights other than the ones the cache was made with. */
async function openCache(
  datasetDir: string,
  kind: CacheKind,
  id: string,
  name: string,
  config: Record<string, unknown>,
  sha: string,
  includeFallbacks: boolean,
): Promise<OpenCache> {
  const dir = cacheDir(datasetDir, kind, id);
  const existing = await readCacheManifest(dir);
  if (existing) {
    if (existing.weights_sha256 !== sha) {
      throw new Error(
        `${dir} was made with weights sha256 ${existing.weights_sha256}, these weights have sha256 ${sha}; ` +
          'refusing to mix them in one cache (move or delete the folder to re-tokenize)',
      );
    }
    const inc = existing.include_fallbacks ?? false;
    if (inc !== includeFallbacks)
      throw new Error(
        `${dir} was made ${inc ? 'with' : 'without'} --include-fallbacks; rerun the same way or use a new folder`,
      );
    return { kind, manifest: existing };
  }
  const manifest: CacheManifest = {
    kind,
    id,
    model: { name, config },
    weights_sha256: sha,
    created: new Date().toISOString(),
    include_fallbacks: includeFallbacks,
    shards: {},
  };
  await writeCacheManifest(dir, manifest);
  return { kind, manifest };
}

async function writeEmptyEmbedding(datasetDir: string, t: LoadedText): Promise<void> {
  const file = path.join(cacheDir(datasetDir, 'text', t.id), EMPTY_FILE);
  if (!arrowFileDamage(file)) return;
  await writeFileAtomic(
    file,
    tableBytes(
      textTable({
        keys: [''],
        ...(await encodeTexts(t, [''], 1)),
        dim: t.encoder.dim,
        pooledDim: t.encoder.pooledDim,
        encoderId: t.id,
      }),
    ),
  );
}

/** Images of `keys` (in order) from the shard's tar -> token ids [keys.length * N]. */
async function encodeImages(
  datasetDir: string,
  shard: number,
  keys: string[],
  vq: LoadedVq,
  batch: number,
): Promise<Int32Array> {
  const res = vq.model.config.resolution;
  const n = vq.gridH * vq.gridW;
  const want = new Set(keys);
  const out = new Int32Array(keys.length * n);
  let filled = 0;
  let pending: Float32Array[] = [];
  const flush = async () => {
    if (!pending.length) return;
    const ids = tf.tidy(() => {
      const pixels = tf.tensor4d(concatFloat32(pending), [pending.length, res, res, 3]);
      return vq.model.encode(pixels);
    });
    out.set(await readData<'int32'>(ids, { dispose: true }), filled * n);
    filled += pending.length;
    pending = [];
  };
  let next = 0;
  for await (const s of readTarSamples(shardPaths(datasetDir, shard).tar)) {
    if (!want.has(s.key)) continue;
    if (s.key !== keys[next])
      throw new Error(
        `shard ${shardName(shard)}: tar has ${s.key} where ${keys[next]} was expected (tar and manifest disagree)`,
      );
    const image = imageOf(s.files);
    if (!image) throw new Error(`shard ${shardName(shard)}: sample ${s.key} has no image`);
    pending.push(await decodeImage(image, res, `shard ${shardName(shard)}: sample ${s.key}`));
    next++;
    if (pending.length >= batch) await flush();
  }
  await flush();
  if (next !== keys.length)
    throw new Error(
      `shard ${shardName(shard)}: ${keys.length - next} selected sample(s) missing from the tar (first: ${keys[next]})`,
    );
  return out;
}

/** Image bytes -> RGB [size, size, 3] in [0, 1]: the decode the VQGAN stage trains on (src/image/to-floats.ts). */
export async function decodeImage(bytes: Buffer, size: number, what?: string): Promise<Float32Array> {
  return imageToFloats(bytes, size, { what });
}

/** Captions -> rows for textTable (ids and float16 hidden states at real length, pooled). */
export async function encodeTexts(
  t: LoadedText,
  captions: string[],
  batch: number,
): Promise<{ ids: Int32Array[]; hidden: Uint16Array[]; pooled?: Float32Array }> {
  const ids: Int32Array[] = [];
  const hidden: Uint16Array[] = [];
  const D = t.encoder.dim;
  const P = t.encoder.pooledDim ?? 0;
  const pooled = P ? new Float32Array(captions.length * P) : undefined;
  for (let at = 0; at < captions.length; at += batch) {
    const out = t.encoder.encode(captions.slice(at, at + batch));
    const [, L] = out.hidden.shape;
    const h = await readData<'float32'>(out.hidden);
    out.lengths.forEach((len, i) => {
      ids.push(out.ids[i]);
      hidden.push(encodeFloat16(h.subarray(i * L * D, (i * L + len) * D)));
    });
    if (pooled && out.pooled) pooled.set(await readData<'float32'>(out.pooled), at * P);
    out.hidden.dispose();
    out.pooled?.dispose();
  }
  return { ids, hidden, pooled };
}

function sortedShards<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
