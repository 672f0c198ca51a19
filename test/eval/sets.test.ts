// Evaluation inputs: image folders (bad files and mixed sizes reported, skipped, counted), prompt files
// (PartiPrompts TSV, DrawBench CSV, plain text; missing columns refused), .npz statistics (pytorch-fid's
// format, both ways) and the FID of two folders with the statistics cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { readImageFolder } from '../../src/eval/image-sets.ts';
import { parsePrompts, readPrompts, byCategory } from '../../src/eval/prompts.ts';
import { loadStatsNpz, saveStatsNpz } from '../../src/eval/fid/npz.ts';
import { featureStatistics } from '../../src/eval/fid/statistics.ts';
import { loadSafetensors } from '../../src/models/safetensors.ts';
import { computeFid, loadInception } from '../../src/eval/fid/compute.ts';
import { PROJECT_ROOT } from '../../src/dataset/data-root.ts';
import { HELD_OUT_COMBINATIONS } from '../../src/sample-data/catalog.ts';
import { onBackend } from '../helpers/backend.ts';

const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'eval');
await tf.setBackend('cpu');

const tmp = (p: string) => fsp.mkdtemp(path.join(os.tmpdir(), p));
const png = (w: number, h: number, rgb: [number, number, number], noise = 0) => {
  const data = Buffer.alloc(w * h * 3);
  let s = rgb[0] * 7 + rgb[1] * 13 + w;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = Math.max(0, Math.min(255, rgb[i % 3] + Math.round((s / 2 ** 32 - 0.5) * noise)));
  }
  return sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
};

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('image folders: non-images and other sizes are reported, skipped and counted; --num limits', async () => {
  const dir = await tmp('muse-evalset-');
  await fsp.writeFile(path.join(dir, 'a.png'), await png(32, 32, [200, 10, 10]));
  await fsp.writeFile(path.join(dir, 'b.png'), await png(32, 32, [10, 200, 10]));
  await fsp.writeFile(
    path.join(dir, 'c.jpg'),
    await sharp(await png(40, 32, [10, 10, 200]))
      .jpeg()
      .toBuffer(),
  );
  await fsp.writeFile(path.join(dir, 'd.txt'), 'not an image');
  await fsp.writeFile(path.join(dir, 'e.png'), Buffer.from('\x89PNG\r\n\x1a\n truncated'));
  await fsp.writeFile(
    path.join(dir, 'f.webp'),
    await sharp(await png(32, 32, [90, 90, 90]))
      .webp()
      .toBuffer(),
  );
  const set = await readImageFolder(dir);
  const kept = await drain(set.images);
  assert.deepEqual(
    kept.map((k) => k.name),
    ['a.png', 'b.png', 'f.webp'],
  );
  assert.deepEqual(set.report.counts, { considered: 6, kept: 3, not_an_image: 2, other_size: 1 });
  assert.equal(set.report.size, '32x32');
  assert.deepEqual(
    set.report.skipped.map((s) => s.name),
    ['c.jpg', 'd.txt', 'e.png'],
  );
  assert.match(set.report.skipped[0].reason, /size 40x32, the set's is 32x32/);
  assert.match(set.report.skipped[1].reason, /not a decodable image/);
  const mixed = await readImageFolder(dir, { allowMixedSizes: true, num: 3 });
  assert.deepEqual(
    (await drain(mixed.images)).map((k) => k.name),
    ['a.png', 'b.png', 'c.jpg'],
  );
  assert.equal(mixed.report.size, 'mixed');
  await assert.rejects(readImageFolder(path.join(dir, 'a.png')), /not a folder of images/);
});

test('prompt files: PartiPrompts TSV, DrawBench CSV, plain text; a missing column is named', async () => {
  const parti = parsePrompts(
    'Prompt\tCategory\tChallenge\tNote\na cat\tAnimals\tSimple Detail\t\n"quoted" dog\tAnimals\tStyle\tsome note\nbridge\tOutdoor Scenes\tPerspective\t\n',
    'p.tsv',
  );
  assert.equal(parti.length, 3);
  assert.deepEqual(parti[1], { prompt: '"quoted" dog', category: 'Animals', challenge: 'Style', note: 'some note' });
  assert.deepEqual([...byCategory(parti).keys()], ['Animals', 'Outdoor Scenes']);
  const draw = parsePrompts(
    'Prompts,Category\n"A red colored car, seen from the side.",Colors\nA stop sign,Text\n"multi\nline",Misspellings\n',
    'd.csv',
  );
  assert.deepEqual(
    draw.map((p) => [p.prompt, p.category]),
    [
      ['A red colored car, seen from the side.', 'Colors'],
      ['A stop sign', 'Text'],
      ['multi\nline', 'Misspellings'],
    ],
  );
  assert.deepEqual(
    parsePrompts('one\n\n two \n', 'x.txt').map((p) => p.prompt),
    ['one', 'two'],
  );
  assert.throws(
    () => parsePrompts('Prompt\tChallenge\na cat\tx\n', 'p.tsv'),
    /p\.tsv: missing column 'Category' \(header: Prompt, Challenge\)/,
  );
  assert.throws(() => parsePrompts('Text,Category\na,b\n', 'd.csv'), /d\.csv: missing column 'Prompts'/);
  assert.throws(() => parsePrompts('Prompt\tCategory\n\tAnimals\n', 'p.tsv'), /p\.tsv:2: empty 'Prompt'/);
  assert.throws(() => parsePrompts('Prompts,Category\n"open,x\n', 'd.csv'), /d\.csv:2: quoted field is never closed/);
  await assert.rejects(readPrompts('/nonexistent/prompts.tsv'), /cannot read prompts/);
});

test("the bundled prompt file covers the sample's held-out pairs and pairs it was trained on", async () => {
  const prompts = await readPrompts(path.join(PROJECT_ROOT, 'datasets', 'sample', 'prompts.tsv'));
  const cats = byCategory(prompts);
  assert.deepEqual([...cats.keys()], ['held-out', 'seen']);
  for (const { color, shape } of HELD_OUT_COMBINATIONS) {
    assert.ok(
      cats.get('held-out')!.some((p) => p.prompt.startsWith(`a ${color} ${shape} `)),
      `${color} ${shape}`,
    );
    assert.ok(!cats.get('seen')!.some((p) => p.prompt.startsWith(`a ${color} ${shape} `)));
  }
});

test(".npz statistics: reads pytorch-fid's np.savez file; what muse writes reads back exactly", async () => {
  const { stats } = await loadStatsNpz(path.join(FIX, 'small_stats1.npz'));
  const f = (await loadSafetensors(path.join(FIX, 'frechet_features.safetensors')))['small.features1'];
  const ours = featureStatistics(f.data as Float32Array, f.shape[0], f.shape[1]);
  let d = 0;
  for (let i = 0; i < ours.sigma.length; i++) d = Math.max(d, Math.abs(ours.sigma[i] - stats.sigma[i]));
  assert.ok(d < 1e-12, `sigma, numpy vs ours: ${d}`);
  // pytorch-fid's mu is np.mean of float32 activations, i.e. a float32 mean; ours is float64.
  let dm = 0;
  for (let i = 0; i < ours.mu.length; i++) dm = Math.max(dm, Math.abs(ours.mu[i] - stats.mu[i]));
  assert.ok(dm < 1e-6, `mu, numpy vs ours: ${dm}`);
  const file = path.join(await tmp('muse-npz-'), 's.npz');
  await saveStatsNpz(file, ours, { weights: 'abc' });
  const back = await loadStatsNpz(file);
  assert.deepEqual([...back.stats.sigma], [...ours.sigma]);
  assert.equal(back.stats.n, 50);
  assert.equal(back.meta.weights, 'abc');
  await fsp.writeFile(file, 'garbage');
  await assert.rejects(loadStatsNpz(file), /not an \.npz/);
});

test('FID of two folders with the random Inception: cached real statistics are reused; fewer than 2 images refused', () =>
  onBackend('wasm', async () => {
    const root = await tmp('muse-fid-');
    const real = path.join(root, 'real');
    const fake = path.join(root, 'fake');
    const one = path.join(root, 'one');
    for (const d of [real, fake, one]) await fsp.mkdir(d);
    for (let i = 0; i < 3; i++) {
      await fsp.writeFile(path.join(real, `${i}.png`), await png(48, 48, [40 + 60 * i, 120, 200 - 50 * i], 40));
      await fsp.writeFile(path.join(fake, `${i}.png`), await png(48, 48, [220, 30 * i, 20], 120));
    }
    await fsp.writeFile(path.join(one, '0.png'), await png(48, 48, [1, 2, 3]));
    const inception = await loadInception();
    const cacheDir = path.join(root, 'cache');
    const o = { inception, resize: 'clean' as const, cacheDir };
    const first = await computeFid(real, fake, o);
    assert.equal(first.real.from, 'images');
    assert.ok(first.fid > 0 && Number.isFinite(first.fid));
    const again = await computeFid(real, fake, o);
    assert.equal(again.real.from, 'cache');
    assert.ok(Math.abs(again.fid - first.fid) < 1e-9 * first.fid);
    const self = await computeFid(real, real, o);
    assert.ok(Math.abs(self.fid) < 1e-6 * first.fid, `self FID ${self.fid}`);
    const viaNpz = await computeFid(first.real.cacheFile!, fake, o);
    assert.equal(viaNpz.real.from, 'npz');
    await assert.rejects(computeFid(real, one, o), /one: 1 image; FID needs at least 2/);
    inception.model.dispose();
  }));
