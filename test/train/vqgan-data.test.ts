// The VQGAN stage's pixel loader over WebDataset shards made here (tar-stream + sharp).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { pack as tarPack } from 'tar-stream';
import * as tf from '@tensorflow/tfjs';
import { writeDuplicatesFile } from '../../src/dataset/decisions-file.ts';
import { listImageShards, openPixelDataset, type PixelBatch } from '../../src/train/vqgan/pixel-data.ts';
import { writeShardRecords } from '../helpers/shard-records.ts';

interface FakeSample {
  key: string;
  status: string;
  /** Left and right half colours (different -> a flip is visible). */
  left: [number, number, number];
  right: [number, number, number];
  ext: 'png' | 'jpg';
}

const colourOf = (shard: number, pos: number): [number, number, number] => [shard * 60 + 10, pos * 40 + 20, 200];

async function image(s: FakeSample): Promise<Buffer> {
  const w = 8;
  const h = 8;
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(x < w / 2 ? s.left : s.right, (y * w + x) * 3);
  const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  return s.ext === 'png' ? img.png().toBuffer() : img.jpeg({ quality: 100 }).toBuffer();
}

async function writeShard(file: string, samples: FakeSample[], complete = true): Promise<void> {
  const pack = tarPack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve) => {
    pack.on('end', () => resolve());
  });
  for (const s of samples) {
    const members: Array<[string, Buffer]> = [
      [s.ext, await image(s)],
      ['json', Buffer.from(JSON.stringify({ key: s.key, status: s.status }))],
      ['txt', Buffer.from('a caption')],
    ];
    for (const [ext, data] of members) pack.entry({ name: `${s.key}.${ext}` }, data);
  }
  pack.finalize();
  await done;
  await writeFile(file, Buffer.concat(chunks));
  // the manifest (the statuses the loader goes by) and the stats file that marks the shard complete
  await writeShardRecords(path.dirname(path.dirname(file)), Number(path.basename(file, '.tar')), samples, { complete });
}

/** 3 shards x 4 samples; per shard: position 1 'filtered', position 3 'fallback', and key 000010002 marked duplicate. */
async function makeDataset(): Promise<{ dir: string; usable: Set<string>; samples: Map<string, FakeSample> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-vqgan-data-'));
  await mkdir(path.join(dir, 'shards'));
  const usable = new Set<string>();
  const samples = new Map<string, FakeSample>();
  for (let shard = 0; shard < 3; shard++) {
    const list: FakeSample[] = [];
    for (let pos = 0; pos < 4; pos++) {
      const key = String(shard).padStart(5, '0') + String(pos).padStart(4, '0');
      const c = colourOf(shard, pos);
      const s: FakeSample = {
        key,
        status: pos === 1 ? 'filtered' : pos === 3 ? 'fallback' : 'ok',
        left: c,
        right: [255 - c[0], 255 - c[1], 30],
        ext: pos % 2 ? 'jpg' : 'png',
      };
      list.push(s);
      samples.set(key, s);
      if (pos !== 1 && key !== '000010002') usable.add(key); // with includeFallbacks
    }
    await writeShard(path.join(dir, 'shards', `${String(shard).padStart(5, '0')}.tar`), list);
  }
  await writeDuplicatesFile(
    dir,
    [{ key: '000010002', duplicate_of: '000000000', duplicate_of_dataset: 'x', kind: 'url', distance: null }],
    '{}',
  );
  return { dir, usable, samples };
}

async function take(next: () => Promise<PixelBatch>, n: number): Promise<Array<{ keys: string[]; pixels: number[] }>> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const b = await next();
    out.push({ keys: b.keys, pixels: Array.from(b.pixels.dataSync()) });
    b.pixels.dispose();
  }
  return out;
}

test('pixel loader: each usable sample once per epoch, skips non-ok and duplicates, decodes pixels', async () => {
  const { dir, usable, samples } = await makeDataset();
  try {
    const ds = await openPixelDataset({
      datasetDir: dir,
      resolution: 4,
      batchSize: 4,
      seed: 7,
      includeFallbacks: true,
    });
    const batches = await take(() => ds.next(), 4); // 16 samples = 2 epochs of 8 usable samples
    const keys = batches.flatMap((b) => b.keys);
    assert.equal(usable.size, 8);
    assert.equal(new Set(keys.slice(0, 8)).size, 8);
    assert.deepEqual(new Set(keys.slice(0, 8)), usable, 'first epoch: every usable key once');
    assert.deepEqual(new Set(keys.slice(8)), usable, 'second epoch: every usable key once');
    assert.notDeepEqual(keys.slice(0, 8), keys.slice(8), 'epochs are shuffled differently');
    // The pixels of the first sample: left half its left colour, right half its right colour (no flip).
    const b0 = batches[0];
    const s = samples.get(b0.keys[0])!;
    const px = (x: number, y: number) => b0.pixels.slice((y * 4 + x) * 3, (y * 4 + x) * 3 + 3).map((v) => v * 255);
    const tol = s.ext === 'jpg' ? 16 : 8; // lanczos resize rings a little across the colour edge
    for (let c = 0; c < 3; c++) {
      assert.ok(Math.abs(px(0, 1)[c] - s.left[c]) <= tol, `left colour ${px(0, 1)} vs ${s.left}`);
      assert.ok(Math.abs(px(3, 2)[c] - s.right[c]) <= tol, `right colour ${px(3, 2)} vs ${s.right}`);
    }
    assert.ok(b0.pixels.every((v) => v >= 0 && v <= 1));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('pixel loader: state() + restore gives the same following batches (with flips), and shard selection', async () => {
  const { dir } = await makeDataset();
  try {
    const opts = { datasetDir: dir, resolution: 4, batchSize: 2, seed: 3, flip: true, includeFallbacks: true };
    const a = await openPixelDataset(opts);
    await take(() => a.next(), 3);
    const state = JSON.parse(JSON.stringify(a.state()));
    const rest = await take(() => a.next(), 6);
    const b = await openPixelDataset({ ...opts, resumeFrom: state });
    const again = await take(() => b.next(), 6);
    assert.deepEqual(again, rest);
    const c = await openPixelDataset(opts);
    c.restore(state);
    assert.deepEqual(await take(() => c.next(), 6), rest);
    // Flips happen for some samples and not others: the left column's colour is then the right colour.
    const all = await take(() => (async () => a.next())(), 9);
    const flipped = all.flatMap((bt) => bt.keys.map((_, i) => bt.pixels[i * 48] > bt.pixels[i * 48 + 9]));
    assert.ok(flipped.some((f) => f) && flipped.some((f) => !f), 'some flipped, some not');
    await assert.rejects(openPixelDataset({ ...opts, seed: 4, resumeFrom: state }), /seed/);

    const only = await openPixelDataset({ ...opts, shards: [1] });
    const keys = (await take(() => only.next(), 3)).flatMap((bt) => bt.keys);
    assert.ok(
      keys.every((k) => k.startsWith('00001')),
      keys.join(),
    );
    assert.deepEqual(new Set(keys), new Set(['000010000', '000010003']));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('pixel loader: clear errors for no usable samples, missing shards, bad options', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-vqgan-data-'));
  try {
    await mkdir(path.join(dir, 'shards'));
    await assert.rejects(openPixelDataset({ datasetDir: dir, resolution: 8, batchSize: 1, seed: 0 }), /no shards/);
    await writeShard(path.join(dir, 'shards', '00000.tar'), [
      { key: '000000000', status: 'failed', left: [1, 2, 3], right: [4, 5, 6], ext: 'png' },
    ]);
    const ds = await openPixelDataset({ datasetDir: dir, resolution: 8, batchSize: 1, seed: 0 });
    await assert.rejects(ds.next(), /no usable samples/);
    await assert.rejects(
      openPixelDataset({ datasetDir: dir, resolution: 8, batchSize: 1, seed: 0, shards: [5] }),
      /shard 5 is missing/,
    );
    await assert.rejects(openPixelDataset({ datasetDir: dir, resolution: 0, batchSize: 1, seed: 0 }), /resolution/);
    assert.equal(tf.memory().numTensors >= 0, true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('pixel loader: fallbacks only when asked (as tokenize); a shard without its stats file is not read', async () => {
  const { dir, usable } = await makeDataset();
  try {
    const noFallbacks = [...usable].filter((k) => !k.endsWith('3'));
    const ds = await openPixelDataset({ datasetDir: dir, resolution: 4, batchSize: noFallbacks.length, seed: 1 });
    const [epoch] = await take(() => ds.next(), 1);
    assert.deepEqual(new Set(epoch.keys), new Set(noFallbacks));
    // shard 3: its tar and manifest are written, its stats file is not (fetch has not finished it)
    await writeShard(
      path.join(dir, 'shards', '00003.tar'),
      [{ key: '000030000', status: 'ok', left: [9, 9, 9], right: [1, 1, 1], ext: 'png' }],
      false,
    );
    assert.deepEqual(listImageShards(dir), [0, 1, 2]);
    const all = await openPixelDataset({ datasetDir: dir, resolution: 4, batchSize: 1, seed: 1 });
    assert.deepEqual(all.shards, [0, 1, 2]);
    await assert.rejects(
      openPixelDataset({ datasetDir: dir, resolution: 4, batchSize: 1, seed: 1, shards: [3] }),
      /shard 00003 is incomplete \(no .*00003_stats\.json/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('pixel loader: random crops are seeded windows of the whole image, resumable, and bad crop sizes are refused', async () => {
  const { dir } = await makeDataset();
  try {
    const opts = { datasetDir: dir, resolution: 8, batchSize: 2, seed: 5, includeFallbacks: true };
    const whole = await take(async () => (await openPixelDataset(opts)).next(), 1);
    const cropOpts = { ...opts, crop: 4 };
    const a = await openPixelDataset(cropOpts);
    const batches = await take(() => a.next(), 4);
    assert.deepEqual(batches[0].keys, whole[0].keys, 'crops do not change which samples come');
    // Each crop is a 4x4 window of the 8x8 image at some offset.
    const offsets = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const img = whole[0].pixels.slice(i * 192, (i + 1) * 192);
      const crop = batches[0].pixels.slice(i * 48, (i + 1) * 48);
      let found = '';
      for (let y = 0; y <= 4 && !found; y++) {
        for (let x = 0; x <= 4 && !found; x++) {
          let same = true;
          for (let r = 0; r < 4 && same; r++)
            for (let c = 0; c < 12; c++) if (img[((y + r) * 8 + x) * 3 + c] !== crop[r * 12 + c]) same = false;
          if (same) found = `${x},${y}`;
        }
      }
      assert.ok(found, `crop ${i} is a window of its image`);
      offsets.add(found);
    }
    const cropsOfAll = batches.flatMap((b) => b.keys.map((_, i) => b.pixels.slice(i * 48, (i + 1) * 48).join()));
    assert.ok(new Set(cropsOfAll).size > 4, 'crops differ');
    const state = JSON.parse(JSON.stringify(a.state()));
    const rest = await take(() => a.next(), 3);
    assert.deepEqual(
      await take(async () => (await openPixelDataset({ ...cropOpts, resumeFrom: state })).next(), 1),
      rest.slice(0, 1),
    );
    await assert.rejects(openPixelDataset({ ...opts, crop: 9 }), /crop must be an integer in \[1, resolution 8\]/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
