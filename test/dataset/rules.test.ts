/**
 * The dataset rules every stage shares (src/dataset/): on a fetched shard of the bundled sample with a fallback,
 * an unapplied dedup decision and an unapplied opt-out, plus a second shard whose stats file is gone (unfinished):
 * tokenize, the token-cache loader and the VQGAN pixel loader read exactly the same samples; an opt-out added
 * after tokenize reaches neither training stage; and tokenize and VQGAN training decode an image to the same floats.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { pack as tarPack } from 'tar-stream';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { readManifest } from '../../src/dataset/manifest.ts';
import { shardPaths } from '../../src/dataset/names.ts';
import { writeDuplicatesFile } from '../../src/dataset/decisions-file.ts';
import { completeShards } from '../../src/dataset/complete-shards.ts';
import { selectSamples, usableRule } from '../../src/dataset/select.ts';
import { parseShardSelection } from '../../src/dataset/shard-selection.ts';
import { datasetName, readDatasetJson } from '../../src/dataset/dataset-json.ts';
import { OptoutStore } from '../../src/optout/store.ts';
import { openIndex } from '../../src/index-db/db.ts';
import { initBackend, tf } from '../../src/runtime/backend.ts';
import { BUILTIN_VQ_ID } from '../../src/models/registry.ts';
import { decodeImage, runTokenize } from '../../src/tokenize/run-tokenize.ts';
import { openTokenDataset } from '../../src/train/data/loader.ts';
import { listImageShards, openPixelDataset } from '../../src/train/vqgan/pixel-data.ts';
import { readTarSamples } from '../../src/shards/tar-reader.ts';
import { imageSetFingerprint, readDatasetImages } from '../../src/eval/image-sets.ts';
import { imageToFloats } from '../../src/image/to-floats.ts';
import { writeShardRecords } from '../helpers/shard-records.ts';
import { TINY_VQ_CONFIG, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { sample } from '../../src/sample/sample.ts';
import { loadCheckpoint } from '../../src/sample/load.ts';

const root = path.resolve(import.meta.dirname, '../..');
let dataset: string;
let dataRoot: string;
let expected: string[];
let okRows: Array<{ key: string; url: string }>;

const optOut = (url: string) => {
  const index = openIndex(dataRoot);
  try {
    new OptoutStore(index).addUrls([url]);
  } finally {
    index.close();
  }
};

/** One epoch of the VQGAN pixel loader: its keys, and each sample's floats. */
async function pixelEpoch(n: number, resolution = 64): Promise<Map<string, Float32Array>> {
  const ds = await openPixelDataset({ datasetDir: dataset, dataRoot, resolution, batchSize: n, seed: 5 });
  const b = await ds.next();
  const flat = b.pixels.dataSync() as Float32Array;
  b.pixels.dispose();
  const per = resolution * resolution * 3;
  return new Map(b.keys.map((k, i) => [k, flat.slice(i * per, (i + 1) * per)]));
}

async function tokenEpochKeys(n: number): Promise<string[]> {
  const ds = await openTokenDataset({
    datasetDir: dataset,
    dataRoot,
    vqId: BUILTIN_VQ_ID,
    batchSize: n,
    seed: 1,
    shuffleBuffer: 0,
    dropLast: false,
  });
  return (await ds.next()).keys;
}

before(async () => {
  await initBackend('wasm', { quiet: true });
  dataset = await mkdtemp(path.join(os.tmpdir(), 'muse-dataset-rules-'));
  dataRoot = path.join(dataset, 'root');
  const file = path.join(root, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 20 }), file);
  await runFetch({
    cfg,
    datasetDir: dataset,
    dataRoot,
    projectRoot: root,
    workers: 1,
    logFormat: 'json',
    shards: '0,1',
  });
  // shard 1 as fetch leaves it when killed before its last write: tar and manifest, no stats file
  await rm(shardPaths(dataset, 1).stats);
  const rows = await readManifest(shardPaths(dataset, 0).manifest);
  assert.ok(
    rows.some((r) => r.status === 'fallback'),
    'shard 0 of the sample has a fallback row',
  );
  okRows = rows.filter((r) => r.status === 'ok');
  const duplicate = okRows[2].key;
  await writeDuplicatesFile(
    dataset,
    [{ key: duplicate, duplicate_of: okRows[0].key, duplicate_of_dataset: 'x', kind: 'sha256', distance: null }],
    'test',
  );
  optOut(okRows[4].url); // in the index, not applied to the shard
  expected = okRows.map((r) => r.key).filter((k) => k !== duplicate && k !== okRows[4].key);
});

after(async () => {
  await rm(dataset, { recursive: true, force: true });
});

test('complete shards: the one with a stats file only, for tokenize and the VQGAN stage alike', async () => {
  assert.deepEqual(await completeShards(dataset), [0]);
  assert.deepEqual(listImageShards(dataset), [0]);
  assert.deepEqual(await completeShards(dataset, parseShardSelection('0-1')), [0]);
});

test('usable samples: tokenize, the token loader and the VQGAN stage read the same keys; a later opt-out reaches neither', async () => {
  const rule = await usableRule(dataset, { dataRoot });
  assert.deepEqual(
    (await selectSamples(dataset, 0, rule)).map((s) => s.key),
    expected,
  );
  const summary = await runTokenize({
    datasetDir: dataset,
    text: [],
    batch: 8,
    includeFallbacks: false,
    dataRoot,
    log: () => {},
  });
  assert.deepEqual(summary.shards_done, [0], 'the unfinished shard 1 is not tokenized');
  assert.deepEqual(await tokenEpochKeys(expected.length), expected);
  assert.deepEqual([...(await pixelEpoch(expected.length, 16)).keys()].sort(), expected);

  // opted out after the caches were made, not applied: the caches still hold it, no training stage reads it
  const late = okRows[1];
  optOut(late.url);
  const now = expected.filter((k) => k !== late.key);
  assert.deepEqual(await tokenEpochKeys(now.length), now);
  assert.deepEqual([...(await pixelEpoch(now.length, 16)).keys()].sort(), now);
});

test('muse-eval reads a dataset by the same rule: no unfinished shard, decided duplicate or opted-out image in its real set', async () => {
  const rule = await usableRule(dataset, { dataRoot });
  const usable = (await selectSamples(dataset, 0, rule)).map((s) => s.key);
  const set = await readDatasetImages(dataset, { dataRoot, allowMixedSizes: true });
  const names: string[] = [];
  for await (const im of set.images) names.push(im.name);
  assert.deepEqual(names, usable);
  assert.ok(!names.includes(okRows[4].key), 'the opted-out image is left out');
  assert.ok(names.length < okRows.length, `${names.length} of ${okRows.length} ok samples`);
  assert.ok(
    names.every((k) => k.startsWith('00000')),
    'nothing of the unfinished shard 1',
  );
  // A set's cached statistics depend on what it leaves out: a new opt-out changes the fingerprint.
  const before = JSON.stringify(await imageSetFingerprint(dataset, { dataRoot }));
  optOut(okRows[3].url);
  assert.notEqual(JSON.stringify(await imageSetFingerprint(dataset, { dataRoot })), before);
});

test('one decode: the VQGAN stage trains on the floats tokenize encodes', async () => {
  const picked = await pixelEpoch(4);
  const bytes = new Map<string, Buffer>();
  for await (const s of readTarSamples(shardPaths(dataset, 0).tar))
    if (picked.has(s.key)) bytes.set(s.key, s.files.jpg ?? s.files.png ?? s.files.webp);
  assert.equal(bytes.size, 4);
  for (const [key, px] of picked) assert.deepEqual(await decodeImage(bytes.get(key)!, 64), px, key);
});

test('one decode: EXIF orientation, alpha and greyscale give identical floats on both paths', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-decode-'));
  try {
    // 12x6 left half red / right half blue, stored with EXIF orientation 6 (display rotated 90° clockwise)
    const w = 12;
    const h = 6;
    const raw = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) raw.set(x < w / 2 ? [230, 20, 20] : [20, 20, 230], (y * w + x) * 3);
    const rotated = await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const rgba = await sharp({
      create: { width: 9, height: 7, channels: 4, background: { r: 10, g: 200, b: 90, alpha: 0.5 } },
    })
      .png()
      .toBuffer();
    const grey = await sharp({ create: { width: 5, height: 8, channels: 3, background: { r: 120, g: 120, b: 120 } } })
      .greyscale()
      .png()
      .toBuffer();
    const images: Array<[string, string, Buffer]> = [
      ['000000000', 'jpg', rotated],
      ['000000001', 'png', rgba],
      ['000000002', 'png', grey],
    ];
    const pack = tarPack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    const ended = new Promise<void>((resolve) => {
      pack.on('end', () => resolve());
    });
    for (const [key, ext, data] of images) {
      pack.entry({ name: `${key}.${ext}` }, data);
      pack.entry({ name: `${key}.txt` }, 'x');
    }
    pack.finalize();
    await ended;
    await writeShardRecords(
      dir,
      0,
      images.map(([key]) => ({ key, status: 'ok' })),
    );
    await writeFile(shardPaths(dir, 0).tar, Buffer.concat(chunks));

    const ds = await openPixelDataset({ datasetDir: dir, resolution: 8, batchSize: 3, seed: 0 });
    const b = await ds.next();
    const flat = b.pixels.dataSync() as Float32Array;
    b.pixels.dispose();
    for (const [i, key] of b.keys.entries()) {
      const [, , data] = images.find(([k]) => k === key)!;
      assert.deepEqual(await decodeImage(data, 8), flat.slice(i * 192, (i + 1) * 192), key);
    }
    // the orientation is applied: after the 90° turn red is on top, blue at the bottom
    const px = await imageToFloats(rotated, 8);
    assert.ok(px[0] > 0.7 && px[2] < 0.3, `top-left is red: ${px.slice(0, 3)}`);
    const last = px.length - 3;
    assert.ok(px[last + 2] > 0.7 && px[last] < 0.3, `bottom-right is blue: ${px.slice(last)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('one --shards grammar for fetch and tokenize', () => {
  assert.deepEqual(parseShardSelection('0-2,5,4'), [0, 1, 2, 4, 5]);
  assert.deepEqual(parseShardSelection(' 7 '), [7]);
  assert.deepEqual(parseShardSelection('all', 3), [0, 1, 2]);
  assert.throws(() => parseShardSelection('3-1'), /--shards: 3-1 is empty/);
  assert.throws(() => parseShardSelection('x'), /--shards: cannot read 'x'/);
  assert.throws(() => parseShardSelection('0-12', 10), /shard 12 does not exist; the input has 10 shard/);
});

test('dataset.json: typed reader of what fetch wrote; a damaged file is named in the error', async () => {
  const j = readDatasetJson<{ samples_per_shard: number }>(dataset);
  assert.ok(j);
  assert.equal(j.name, path.basename(dataset)); // named after its folder
  assert.equal(j.pipeline.samples_per_shard, 20);
  assert.equal(j.shards, Math.ceil(j.total_rows / 20));
  assert.equal(datasetName(dataset), path.basename(dataset));
  const other = await mkdtemp(path.join(os.tmpdir(), 'muse-dsjson-'));
  try {
    assert.equal(readDatasetJson(other), null);
    assert.equal(datasetName(other), path.basename(other));
    await writeFile(path.join(other, 'dataset.json'), '{"name": "x", ');
    assert.throws(() => readDatasetJson(other), /dataset\.json: not readable JSON/);
  } finally {
    await rm(other, { recursive: true, force: true });
  }
});

test('one decode: the sampler encodes an --init-image as tokenize does (a greyscale one works)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-init-'));
  try {
    const ckpt = await writeTinyCheckpoint(dir);
    const res = TINY_VQ_CONFIG.resolution!;
    const grey = await sharp({ create: { width: 40, height: 24, channels: 3, background: { r: 90, g: 90, b: 90 } } })
      .greyscale()
      .png()
      .toBuffer();
    const mask = await sharp({ create: { width: res, height: res, channels: 3, background: { r: 0, g: 0, b: 0 } } })
      .png()
      .toBuffer();
    const r = await sample({
      checkpoint: ckpt,
      prompts: ['a grey square'],
      steps: 2,
      seed: 1,
      init: { image: grey, mask },
    });
    // an all-black mask keeps every token: the result is exactly the VQ encode of the shared decode
    const ck = await loadCheckpoint(ckpt);
    try {
      const ids = ck.vq.encode(tf.tensor4d(await imageToFloats(grey, res), [1, res, res, 3]));
      assert.deepEqual([...r.images[0].ids], [...(ids.dataSync() as Int32Array)]);
      ids.dispose();
    } finally {
      ck.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
