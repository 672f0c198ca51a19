/**
 * Tokenize throughput: images/s of `muse-data tokenize` with the built-in VQGAN (vqgan-tiny-seed0,
 * 64 px -> 8x8 tokens) + the built-in byt5-tiny text encoder, per tfjs backend, on a generated dataset
 * (default 2 shards x 200 samples of 64 px JPEGs with captions; --quick 2 x 40). Each shard is timed from reading
 * its manifest to its cache files written (tar read, sharp decode, VQGAN encode, text encode, Arrow write);
 * model loading is reported separately. Backends: tensorflow (skipped with a note when not installed), wasm and cpu, or `--backend NAME`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { initBackend, tf, type BackendName } from '../src/runtime/backend.ts';
import { writeManifest, manifestRow } from '../src/dataset/manifest.ts';
import { shardPaths } from '../src/dataset/names.ts';
import { summarize, writeStats } from '../src/dataset/stats.ts';
import { ShardTarWriter } from '../src/shards/tar-writer.ts';
import type { SampleOutcome } from '../src/shards/outcome.ts';
import { syntheticKey } from '../test/helpers/synthetic-cache.ts';
import { loadTokenizeContext, runTokenize, tokenizeShard, type TokenizeOptions } from '../src/tokenize/run-tokenize.ts';
import { mulberry32 } from '../src/util/prng.ts';
import { markdownTable, round } from './lib.ts';

const SIZE = 64;
const BATCH = 16;

/** A SIZE px JPEG (q90) of gradients plus noise. */
async function makeJpeg(seed: number): Promise<Buffer> {
  const r = mulberry32(seed);
  const px = Buffer.alloc(SIZE * SIZE * 3);
  const [a, b, c] = [r() * 8, r() * 8, r() * 255];
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const i = (y * SIZE + x) * 3;
      px[i] = (x * a + c + r() * 24) & 255;
      px[i + 1] = (y * b + r() * 24) & 255;
      px[i + 2] = ((x + y) * (a + b) * 0.5 + r() * 24) & 255;
    }
  }
  return sharp(px, { raw: { width: SIZE, height: SIZE, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** Complete shards (tar + manifest + stats) of `perShard` ok samples each. */
async function writeDataset(dir: string, shards: number, perShard: number): Promise<void> {
  const jpegs = await Promise.all(Array.from({ length: 32 }, (_, i) => makeJpeg(i + 1)));
  const words = [
    'a',
    'photo',
    'of',
    'red',
    'small',
    'dog',
    'on',
    'the',
    'beach',
    'at',
    'sunset',
    'painting',
    'city',
    'night',
  ];
  for (let s = 0; s < shards; s++) {
    const p = shardPaths(dir, s);
    const w = await ShardTarWriter.create(p.tar);
    const outcomes: SampleOutcome[] = [];
    for (let i = 0; i < perShard; i++) {
      const n = s * perShard + i;
      const caption = Array.from({ length: 4 + (n % 12) }, (_, j) => words[(n * 7 + j * 3) % words.length]).join(' ');
      const o: SampleOutcome = {
        key: syntheticKey(s, i),
        row: n,
        url: `http://example.invalid/${n}.jpg`,
        caption,
        meta: {},
        status: 'ok',
        reason: null,
        error: null,
        image: { data: jpegs[n % jpegs.length], ext: 'jpg', width: SIZE, height: SIZE },
      };
      await w.add(o);
      outcomes.push(o);
    }
    await w.finish();
    const rows = outcomes.map(manifestRow);
    await writeManifest(p.manifest, rows);
    const now = new Date().toISOString();
    await writeStats(p.stats, {
      shard: s,
      ...summarize(rows),
      bytes_written: 0,
      start_time: now,
      end_time: now,
      duration_s: 0,
      timings_ms: {},
    });
  }
}

interface BackendResult {
  backend: string;
  images: number;
  load_s: number;
  tokenize_s: number;
  images_per_s: number;
  ms_per_image: number;
}

export async function benchTokenize(
  opts: { quick?: boolean; log?: (m: string) => void; backends?: string[] } = {},
): Promise<object> {
  const log = opts.log ?? (() => {});
  const shards = 2;
  const perShard = opts.quick ? 40 : 200;
  const backends = opts.backends ?? ['tensorflow', 'wasm', 'cpu'];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-tokenize-'));
  const results: BackendResult[] = [];
  const skipped: string[] = [];
  try {
    log(`writing ${shards} shards x ${perShard} samples of ${SIZE} px JPEGs`);
    await writeDataset(dir, shards, perShard);
    for (const backend of backends) {
      try {
        await initBackend(backend as BackendName, { quiet: true });
      } catch (err) {
        const msg = `${backend}: ${(err as Error).message.split('\n')[0]}; skipped`;
        log(msg);
        skipped.push(msg);
        continue;
      }
      log(`backend ${tf.getBackend()}`);
      await rm(path.join(dir, 'tokens'), { recursive: true, force: true });
      await rm(path.join(dir, 'text'), { recursive: true, force: true });
      const o: TokenizeOptions = { datasetDir: dir, text: ['byt5-tiny'], batch: BATCH, includeFallbacks: false };
      const t0 = performance.now();
      const ctx = await loadTokenizeContext(o);
      const load = (performance.now() - t0) / 1000;
      let images = 0;
      const t1 = performance.now();
      try {
        for (let s = 0; s < shards; s++) images += (await tokenizeShard(s, ctx)).samples;
      } finally {
        ctx.dispose();
      }
      const secs = (performance.now() - t1) / 1000;
      results.push({
        backend: tf.getBackend(),
        images,
        load_s: round(load, 2),
        tokenize_s: round(secs, 2),
        images_per_s: round(images / secs, 1),
        ms_per_image: round((secs * 1000) / images, 2),
      });
    }
    // end to end, `--workers 1` vs `--workers 2` (one shard per process), wasm: worker start-up and model load included
    const endToEnd: Array<{ workers: number; images: number; wall_s: number; images_per_s: number }> = [];
    if (results.some((r) => r.backend === 'wasm')) {
      await initBackend('wasm', { quiet: true });
      for (const workers of [1, 2]) {
        await rm(path.join(dir, 'tokens'), { recursive: true, force: true });
        await rm(path.join(dir, 'text'), { recursive: true, force: true });
        log(`end to end, wasm, --workers ${workers}`);
        const t0 = performance.now();
        const s = await runTokenize({
          datasetDir: dir,
          text: ['byt5-tiny'],
          batch: BATCH,
          includeFallbacks: false,
          workers,
          log: () => {},
        });
        const secs = (performance.now() - t0) / 1000;
        endToEnd.push({ workers, images: s.samples, wall_s: round(secs, 2), images_per_s: round(s.samples / secs, 1) });
      }
    }
    return {
      config: {
        vq: 'vqgan-tiny-seed0 (64 px -> 8x8 tokens, 256 codes)',
        text: 'byt5-tiny',
        shards,
        per_shard: perShard,
        image: `${SIZE}x${SIZE} JPEG q90`,
        batch: BATCH,
        processes: 1,
      },
      backends: results,
      notes: [
        'one process; per shard: tar read + sharp decode + VQGAN encode + byt5-tiny encode + Arrow write (atomic); model load excluded',
        ...skipped,
      ],
      end_to_end_wasm: endToEnd,
      table:
        markdownTable(
          ['backend', 'images', 'images/s', 'ms/image', 'model load (s)'],
          results.map((r) => [r.backend, r.images, r.images_per_s, r.ms_per_image, r.load_s]),
        ) +
        (endToEnd.length
          ? '\n\nend to end (runTokenize on wasm, model load and worker start-up included; --workers 1 runs in this process)\n\n' +
            markdownTable(
              ['--workers', 'images', 'wall (s)', 'images/s'],
              endToEnd.map((e) => [e.workers, e.images, e.wall_s, e.images_per_s]),
            )
          : ''),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
