/**
 * Loader benchmark: the token-cache loader (batch 64, 16x16 = 256 image tokens, 77x768 float16 text
 * states) against the raw-pixel path (read the same number of 256 px JPEGs from a WebDataset tar and decode them
 * with sharp to float pixels), same run, same machine. Caches and tar are generated synthetically in a temp dir.
 * "Per core" = samples per CPU second of the process (user + system, all threads: sharp decodes on libuv threads).
 * Targets: >= 50k samples/s per core for tokens alone, >= 100x the raw-pixel path.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { openTokenDataset, type TokenDatasetOptions } from '../src/train/data/loader.ts';
import { syntheticKey, writeSyntheticCaches } from '../test/helpers/synthetic-cache.ts';
import { ShardTarWriter } from '../src/shards/tar-writer.ts';
import { readTarSamples } from '../src/shards/tar-reader.ts';
import { configureSharp } from '../src/image/sharp-setup.ts';
import { mulberry32 } from '../src/util/prng.ts';
import { markdownTable, round } from './lib.ts';

const BATCH = 64;
const GRID = 16;
const TEXT_LEN = 77;
const DIM = 768;
const PER_SHARD = 500;

interface Rate {
  samples: number;
  wall_s: number;
  cpu_s: number;
  batches_per_s: number;
  samples_per_s: number;
  samples_per_cpu_s: number;
}

function rate(samples: number, wallMs: number, cpuUs: number): Rate {
  return {
    samples,
    wall_s: round(wallMs / 1000, 3),
    cpu_s: round(cpuUs / 1e6, 3),
    batches_per_s: round(samples / BATCH / (wallMs / 1000), 1),
    samples_per_s: Math.round(samples / (wallMs / 1000)),
    samples_per_cpu_s: Math.round(samples / (cpuUs / 1e6)),
  };
}

async function measure(fn: () => Promise<number>): Promise<Rate> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const samples = await fn();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return rate(samples, wall, cpu.user + cpu.system);
}

/** One epoch of the loader (full batches): samples read. */
async function runLoader(o: TokenDatasetOptions, batches: number): Promise<number> {
  const loader = await openTokenDataset(o);
  let samples = 0;
  for (let i = 0; i < batches; i++) samples += (await loader.next()).size;
  return samples;
}

/** A 256 px JPEG (q95) of smooth gradients plus noise, so it decodes like a photo-sized file. */
async function makeJpeg(seed: number): Promise<Buffer> {
  const r = mulberry32(seed);
  const px = Buffer.alloc(256 * 256 * 3);
  const [a, b, c] = [r() * 4, r() * 4, r() * 255];
  for (let y = 0; y < 256; y++) {
    for (let x = 0; x < 256; x++) {
      const i = (y * 256 + x) * 3;
      px[i] = (x * a + c + r() * 24) & 255;
      px[i + 1] = (y * b + r() * 24) & 255;
      px[i + 2] = ((x + y) * (a + b) * 0.5 + r() * 24) & 255;
    }
  }
  return sharp(px, { raw: { width: 256, height: 256, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

async function writeTar(file: string, samples: number): Promise<number> {
  const jpegs = await Promise.all(Array.from({ length: 16 }, (_, i) => makeJpeg(i + 1)));
  const w = await ShardTarWriter.create(file);
  for (let i = 0; i < samples; i++) {
    const data = jpegs[i % jpegs.length];
    await w.add({
      key: syntheticKey(Math.floor(i / PER_SHARD), i % PER_SHARD),
      row: i,
      url: `http://example.invalid/${i}.jpg`,
      caption: `caption ${i}`,
      meta: {},
      status: 'ok',
      reason: null,
      error: null,
      image: { data, ext: 'jpg', width: 256, height: 256 },
    });
  }
  await w.finish();
  return jpegs.reduce((s, j) => s + j.length, 0) / jpegs.length;
}

/** Raw-pixel path: read the tar, decode each JPEG to RGB and scale to float32 [-1, 1] (a few in flight). */
async function runPixels(file: string): Promise<number> {
  let samples = 0;
  const inFlight: Array<Promise<void>> = [];
  const decode = async (jpg: Buffer) => {
    const raw = await sharp(jpg).removeAlpha().raw().toBuffer();
    const f = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) f[i] = raw[i] / 127.5 - 1;
    samples++;
  };
  for await (const s of readTarSamples(file)) {
    inFlight.push(decode(s.files.jpg));
    if (inFlight.length >= 4) await inFlight.shift();
  }
  await Promise.all(inFlight);
  return samples;
}

export async function benchLoader(opts: { quick?: boolean; log?: (m: string) => void } = {}): Promise<object> {
  const log = opts.log ?? (() => {});
  const shardCount = opts.quick ? 2 : 20;
  const total = shardCount * PER_SHARD;
  const batches = Math.floor(total / BATCH);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-loader-'));
  configureSharp({ cache: false });
  try {
    log(
      `writing ${shardCount} x ${PER_SHARD} samples of token + text caches (${GRID}x${GRID} tokens, ${TEXT_LEN}x${DIM} float16)`,
    );
    const shards = Object.fromEntries(Array.from({ length: shardCount }, (_, i) => [i, PER_SHARD]));
    await writeSyntheticCaches(dir, {
      shards,
      gridH: GRID,
      gridW: GRID,
      codebookSize: 8192,
      dim: DIM,
      textLength: () => TEXT_LEN,
      vqId: 'vq',
      textId: 't5',
    });
    // the same with captions at a realistic length (8..40 tokens, stored at real length, padded to 77 in batches)
    const shortDir = path.join(dir, 'short');
    await writeSyntheticCaches(shortDir, {
      shards,
      gridH: GRID,
      gridW: GRID,
      codebookSize: 8192,
      dim: DIM,
      textLength: (s, p) => 8 + ((s * 31 + p * 17) % 33),
      vqId: 'vq',
      textId: 't5',
    });
    const tar = path.join(dir, 'pixels.tar');
    log(`writing a tar of ${total} 256 px JPEGs`);
    const jpegBytes = await writeTar(tar, total);

    const base: TokenDatasetOptions = { datasetDir: dir, vqId: 'vq', batchSize: BATCH, seed: 1, shuffleBuffer: 1000 };
    log('tokens alone');
    const tokens = await measure(() => runLoader(base, batches));
    log('tokens + text');
    const tokensText = await measure(() => runLoader({ ...base, textId: 't5', textMaxLength: TEXT_LEN }, batches));
    log('tokens + text, short captions');
    const tokensShortText = await measure(() =>
      runLoader({ ...base, datasetDir: shortDir, textId: 't5', textMaxLength: TEXT_LEN }, batches),
    );
    log('raw pixels (tar + sharp decode)');
    const pixels = await measure(() => runPixels(tar));

    const ratio = (a: Rate) => round(a.samples_per_cpu_s / pixels.samples_per_cpu_s, 1);
    const row = (name: string, r: Rate, vs: string) => [
      name,
      r.samples,
      r.batches_per_s,
      r.samples_per_s,
      r.samples_per_cpu_s,
      vs,
    ];
    const table = markdownTable(
      ['path', 'samples', 'batches/s', 'samples/s (wall)', 'samples/s per core', 'vs raw pixels (per core)'],
      [
        row('cache loader: tokens alone', tokens, `${ratio(tokens)}x`),
        row(`cache loader: tokens + text states (${TEXT_LEN}x${DIM})`, tokensText, `${ratio(tokensText)}x`),
        row(
          'cache loader: tokens + text, captions of 8-40 tokens padded to 77',
          tokensShortText,
          `${ratio(tokensShortText)}x`,
        ),
        row('raw pixels: tar + sharp JPEG decode', pixels, '1x'),
      ],
    );
    return {
      config: {
        batch: BATCH,
        image_tokens: GRID * GRID,
        text: `${TEXT_LEN}x${DIM} float16`,
        shards: shardCount,
        per_shard: PER_SHARD,
        shuffle_buffer: 1000,
        jpeg: `256x256 q95, ~${Math.round(jpegBytes / 1024)} KiB`,
      },
      tokens,
      tokens_text: tokensText,
      tokens_short_text: tokensShortText,
      pixels,
      ratio_tokens_vs_pixels: ratio(tokens),
      ratio_tokens_text_vs_pixels: ratio(tokensText),
      ratio_tokens_short_text_vs_pixels: ratio(tokensShortText),
      targets: { tokens_samples_per_core: 50_000, ratio_vs_pixels: 100 },
      notes: [
        'per core = samples per CPU second of the whole process (sharp decodes on libuv threads, counted too)',
        'caches and JPEGs are synthetic and freshly written (in the page cache): this measures CPU, not disk',
        'text states are float16 in the cache and float32 in batches: 77x768 is 118 KB read + 236 KB written per sample, which bounds the text rows',
      ],
      table,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
