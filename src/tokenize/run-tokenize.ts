/**
 * `muse-data tokenize`: complete shards -> `tokens/<vq-id>/` and `text/<encoder-id>/` Arrow caches.
 * Per shard every cache file is written atomically, then its manifest entry; a shard already listed with its
 * file present is skipped, so a rerun (after kill -9 too) redoes only unfinished shards.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { tf } from '../runtime/backend.ts';
import { encodeFloat16 } from '../runtime/float16.ts';
import { shardName, shardPaths } from '../shards/names.ts';
import { readTarSamples } from '../shards/tar-reader.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import {
  EMPTY_FILE, cacheDir, cacheShardPath, readCacheManifest, tableBytes, textTable, tokenTable, writeCacheManifest,
  type CacheKind, type CacheManifest,
} from './cache-format.ts';
import { loadText, loadVq, type LoadedText, type LoadedVq } from './models.ts';
import { completeShards, loadExclusions, selectSamples } from './select.ts';

export interface TokenizeOptions {
  datasetDir: string;
  /** undefined / 'builtin' or a folder. */
  vq?: string;
  /** Text encoder specs (byt5-tiny, t5:DIR, clip:DIR). */
  text: string[];
  shards?: [number, number];
  batch: number;
  includeFallbacks: boolean;
  imageSize?: number;
  /** Data root whose index.sqlite lists opt-outs not yet applied to the shards (skipped too). */
  dataRoot?: string;
  log?: (msg: string) => void;
}

export interface TokenizeSummary {
  vq_id: string;
  text_ids: string[];
  shards_done: number[];
  shards_skipped: number[];
  samples: number;
}

const IMAGE_EXTS = ['jpg', 'jpeg', 'png', 'webp'];

export async function runTokenize(o: TokenizeOptions): Promise<TokenizeSummary> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const vq = await loadVq(o.vq, o.imageSize);
  const texts: LoadedText[] = [];
  try {
    for (const spec of o.text) texts.push(await loadText(spec));
    const caches = [
      await openCache(o.datasetDir, 'vq', vq.id, vq.name, vq.config, vq.weightsSha256, o.includeFallbacks),
      ...(await Promise.all(texts.map((t) => openCache(o.datasetDir, 'text', t.id, t.name, t.config, t.weightsSha256, o.includeFallbacks)))),
    ];
    for (const t of texts) await writeEmptyEmbedding(o.datasetDir, t);
    const exclude = await loadExclusions(o.datasetDir, o.dataRoot);
    const summary: TokenizeSummary = { vq_id: vq.id, text_ids: texts.map((t) => t.id), shards_done: [], shards_skipped: [], samples: 0 };
    for (const shard of await completeShards(o.datasetDir, o.shards)) {
      const name = shardName(shard);
      const done = caches.every((c) => c.manifest.shards[name] && existsSync(cacheShardPath(o.datasetDir, c.kind, c.manifest.id, shard)));
      if (done) {
        summary.shards_skipped.push(shard);
        continue;
      }
      const t0 = performance.now();
      const samples = await selectSamples(o.datasetDir, shard, { includeFallbacks: o.includeFallbacks, exclude });
      const keys = samples.map((s) => s.key);
      const files = new Map<string, Uint8Array>();
      files.set(`vq`, tableBytes(tokenTable({ keys, tokens: await encodeImages(o.datasetDir, shard, keys, vq, o.batch), gridH: vq.gridH, gridW: vq.gridW, codebookSize: vq.model.config.numEmbeddings, vqId: vq.id })));
      for (const t of texts) files.set(`text:${t.id}`, tableBytes(textTable({ keys, ...encodeTexts(t, samples.map((s) => s.caption), o.batch), dim: t.encoder.dim, pooledDim: t.encoder.pooledDim, encoderId: t.id })));
      for (const c of caches) {
        const bytes = files.get(c.kind === 'vq' ? 'vq' : `text:${c.manifest.id}`)!;
        await writeFileAtomic(cacheShardPath(o.datasetDir, c.kind, c.manifest.id, shard), bytes);
        c.manifest.shards[name] = { samples: keys.length, sha256_of_file: sha256(bytes) };
        c.manifest.shards = sortedShards(c.manifest.shards);
        await writeCacheManifest(cacheDir(o.datasetDir, c.kind, c.manifest.id), c.manifest);
      }
      const s = (performance.now() - t0) / 1000;
      log(`tokenize ${name}: ${keys.length} samples in ${s.toFixed(1)}s (${(keys.length / Math.max(s, 1e-3)).toFixed(1)} samples/s)`);
      summary.shards_done.push(shard);
      summary.samples += keys.length;
    }
    return summary;
  } finally {
    vq.model.dispose();
    for (const t of texts) t.encoder.dispose();
  }
}

interface OpenCache {
  kind: CacheKind;
  manifest: CacheManifest;
}

/** Reads or starts a cache's manifest; refuses weights other than the ones the cache was made with. */
async function openCache(datasetDir: string, kind: CacheKind, id: string, name: string, config: Record<string, unknown>, sha: string, includeFallbacks: boolean): Promise<OpenCache> {
  const dir = cacheDir(datasetDir, kind, id);
  const existing = await readCacheManifest(dir);
  if (existing) {
    if (existing.weights_sha256 !== sha) {
      throw new Error(`${dir} was made with weights sha256 ${existing.weights_sha256}, these weights have sha256 ${sha}; ` +
        'refusing to mix them in one cache (move or delete the folder to re-tokenize)');
    }
    const inc = existing.include_fallbacks ?? false;
    if (inc !== includeFallbacks) throw new Error(`${dir} was made ${inc ? 'with' : 'without'} --include-fallbacks; rerun the same way or use a new folder`);
    return { kind, manifest: existing };
  }
  const manifest: CacheManifest = { kind, id, model: { name, config }, weights_sha256: sha, created: new Date().toISOString(), include_fallbacks: includeFallbacks, shards: {} };
  await writeCacheManifest(dir, manifest);
  return { kind, manifest };
}

async function writeEmptyEmbedding(datasetDir: string, t: LoadedText): Promise<void> {
  const file = path.join(cacheDir(datasetDir, 'text', t.id), EMPTY_FILE);
  if (existsSync(file)) return;
  await writeFileAtomic(file, tableBytes(textTable({ keys: [''], ...encodeTexts(t, [''], 1), dim: t.encoder.dim, pooledDim: t.encoder.pooledDim, encoderId: t.id })));
}

/** Images of `keys` (in order) from the shard's tar -> token ids [keys.length * N]. */
async function encodeImages(datasetDir: string, shard: number, keys: string[], vq: LoadedVq, batch: number): Promise<Int32Array> {
  const res = vq.model.config.resolution;
  const n = vq.gridH * vq.gridW;
  const want = new Set(keys);
  const out = new Int32Array(keys.length * n);
  let filled = 0;
  let pending: Float32Array[] = [];
  const flush = () => {
    if (!pending.length) return;
    const ids = tf.tidy(() => {
      const pixels = tf.tensor4d(concat(pending), [pending.length, res, res, 3]);
      return vq.model.encode(pixels);
    });
    out.set(ids.dataSync() as Int32Array, filled * n);
    ids.dispose();
    filled += pending.length;
    pending = [];
  };
  let next = 0;
  for await (const s of readTarSamples(shardPaths(datasetDir, shard).tar)) {
    if (!want.has(s.key)) continue;
    if (s.key !== keys[next]) throw new Error(`shard ${shardName(shard)}: tar has ${s.key} where ${keys[next]} was expected (tar and manifest disagree)`);
    const ext = IMAGE_EXTS.find((e) => s.files[e]);
    if (!ext) throw new Error(`shard ${shardName(shard)}: sample ${s.key} has no image`);
    pending.push(await decodeImage(s.files[ext], res));
    next++;
    if (pending.length >= batch) flush();
  }
  flush();
  if (next !== keys.length) throw new Error(`shard ${shardName(shard)}: ${keys.length - next} selected sample(s) missing from the tar (first: ${keys[next]})`);
  return out;
}

/** Image bytes -> RGB [size, size, 3] in [0, 1]: scaled to cover the square, centre-cropped. */
export async function decodeImage(bytes: Buffer, size: number): Promise<Float32Array> {
  const raw = await sharp(bytes).removeAlpha().toColourspace('srgb').resize(size, size, { fit: 'cover', position: 'centre' }).raw().toBuffer();
  const px = new Float32Array(size * size * 3);
  for (let i = 0; i < px.length; i++) px[i] = raw[i] / 255;
  return px;
}

/** Captions -> rows for textTable (ids and float16 hidden states at real length, pooled). */
export function encodeTexts(t: LoadedText, captions: string[], batch: number): { ids: Int32Array[]; hidden: Uint16Array[]; pooled?: Float32Array } {
  const ids: Int32Array[] = [];
  const hidden: Uint16Array[] = [];
  const D = t.encoder.dim;
  const P = t.encoder.pooledDim ?? 0;
  const pooled = P ? new Float32Array(captions.length * P) : undefined;
  for (let at = 0; at < captions.length; at += batch) {
    const out = t.encoder.encode(captions.slice(at, at + batch));
    const [, L] = out.hidden.shape;
    const h = out.hidden.dataSync() as Float32Array;
    out.lengths.forEach((len, i) => {
      ids.push(out.ids[i]);
      hidden.push(encodeFloat16(h.subarray(i * L * D, (i * L + len) * D)));
    });
    if (pooled && out.pooled) pooled.set(out.pooled.dataSync() as Float32Array, at * P);
    out.hidden.dispose();
    out.pooled?.dispose();
  }
  return { ids, hidden, pooled };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sortedShards<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
