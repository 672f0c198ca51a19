// muse-eval's command lines and the evaluation during training: `fid` on folders (bad files counted),
// `clip-score`, `run` on a tiny checkpoint (eval.json, grids per category), usage errors; the `evaluation`
// config section (validation, fid / clip_score in log.jsonl, eval.png).
import { fixturePath } from '../helpers/fixtures.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { existsSync, mkdirSync, mkdtempSync, promises as fsp, readFileSync } from 'node:fs';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { runTraining } from '../../src/train/run/run-training.ts';
import { readJsonl } from '../../src/train/core/index.ts';
import { writeSyntheticCaches } from '../helpers/synthetic-cache.ts';
import { onBackend } from '../helpers/backend.ts';
import { runCli } from '../helpers/cli.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'eval');
const TOKENIZER = fixturePath('tokenizers', 'clip', 'tokenizer.json');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-eval-run-'));
await tf.setBackend('cpu');

const museEval = (args: string[]) =>
  runCli('muse-eval', args, { env: { ...process.env, MUSE_DATA_ROOT: path.join(tmp, 'data') } });

async function folder(name: string, colours: Array<[number, number, number]>, side = 32): Promise<string> {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [i, c] of colours.entries()) {
    const data = Buffer.alloc(side * side * 3);
    for (let p = 0; p < side * side; p++) data.set([(c[0] + p) % 256, c[1], (c[2] + 3 * p) % 256], p * 3);
    await fsp.writeFile(
      path.join(dir, `${i}.png`),
      await sharp(data, { raw: { width: side, height: side, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  return dir;
}

async function clipFolder(): Promise<string> {
  const dir = path.join(tmp, 'clip');
  mkdirSync(dir, { recursive: true });
  for (const f of await fsp.readdir(path.join(FIX, 'clip')))
    await fsp.copyFile(path.join(FIX, 'clip', f), path.join(dir, f));
  await fsp.copyFile(TOKENIZER, path.join(dir, 'tokenizer.json'));
  return dir;
}

test('muse-eval fid: JSON result, skipped files reported; clip-score; usage errors exit 2', async () => {
  const real = await folder('real', [
    [10, 20, 30],
    [200, 10, 10],
    [10, 200, 10],
  ]);
  const fake = await folder('fake', [
    [250, 250, 0],
    [0, 250, 250],
    [120, 120, 120],
  ]);
  await fsp.writeFile(path.join(fake, 'notes.txt'), 'not an image');
  const r = await museEval([
    'fid',
    '--real',
    real,
    '--fake',
    fake,
    '--backend',
    'wasm',
    '--json',
    '--resize',
    'pytorch-fid',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    fid: number;
    fake: { n: number; report: { counts: { not_an_image: number } } };
    inception_weights: string;
    resize: string;
  };
  assert.ok(j.fid > 0);
  assert.equal(j.fake.n, 3);
  assert.equal(j.fake.report.counts.not_an_image, 1);
  assert.equal(j.resize, 'pytorch-fid');
  assert.match(j.inception_weights, /random/);
  assert.match(r.stderr, /skipped 1 of 4 files/);
  const one = await folder('one', [[1, 2, 3]]);
  const bad = await museEval(['fid', '--real', real, '--fake', one, '--backend', 'wasm']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /1 image; FID needs at least 2/);
  const usage = await museEval(['fid', '--real', real]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /fake/);

  const prompts = path.join(tmp, 'three.txt');
  await fsp.writeFile(prompts, 'a dark image\na red image\na green image\n');
  const clip = await clipFolder();
  const cs = await museEval([
    'clip-score',
    '--images',
    real,
    '--prompts',
    prompts,
    '--clip',
    clip,
    '--backend',
    'wasm',
    '--json',
  ]);
  assert.equal(cs.code, 0, cs.stderr);
  const cj = JSON.parse(cs.stdout) as { clip_score: number; per_pair: number[] };
  assert.equal(cj.per_pair.length, 3);
  assert.ok(cj.clip_score >= 0 && cj.clip_score <= 100);
  await fsp.writeFile(prompts, 'only one\n');
  const mismatch = await museEval([
    'clip-score',
    '--images',
    real,
    '--prompts',
    prompts,
    '--clip',
    clip,
    '--backend',
    'wasm',
  ]);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /3 images but .* has 1 prompts/);
});

test('muse-eval run: samples a prompt set, eval.json with FID, CLIP score and weight hashes, a grid per category', async () => {
  const ckpt = await writeTinyCheckpoint(path.join(tmp, 'tiny'));
  const prompts = path.join(tmp, 'parti.tsv');
  await fsp.writeFile(
    prompts,
    'Prompt\tCategory\tChallenge\tNote\na red circle\tShapes\tBasic\t\na blue star\tShapes\tBasic\t\na green field\tScenes\tBasic\t\n',
  );
  const real = await folder('real-run', [
    [10, 20, 30],
    [200, 10, 10],
    [10, 200, 10],
    [90, 90, 200],
  ]);
  const out = path.join(tmp, 'eval-out');
  const r = await museEval([
    'run',
    '--checkpoint',
    ckpt,
    '--prompts',
    prompts,
    '--real',
    real,
    '--clip',
    await clipFolder(),
    '--out',
    out,
    '--num',
    '2',
    '--steps',
    '2',
    '--backend',
    'wasm',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(readFileSync(path.join(out, 'eval.json'), 'utf8')) as Record<string, unknown> & {
    fid: number;
    clip_score: number;
    images: number;
    weights_sha256: Record<string, string>;
    grids: Record<string, string>;
    clip_score_by_category: Record<string, number>;
  };
  assert.equal(j.images, 6);
  assert.ok(Number.isFinite(j.fid) && j.fid > 0);
  assert.ok(j.clip_score >= 0);
  assert.deepEqual(Object.keys(j.clip_score_by_category), ['Shapes', 'Scenes']);
  assert.match(j.weights_sha256['ema/model.safetensors'], /^[0-9a-f]{64}$/);
  assert.deepEqual(Object.keys(j.grids), ['Shapes', 'Scenes']);
  for (const f of Object.values(j.grids)) assert.ok(existsSync(path.join(out, f)), f);
  assert.equal((await fsp.readdir(path.join(out, 'images'))).length, 6);
  // The real set's statistics were cached under the data root; a second run reuses them.
  const again = await museEval([
    'run',
    '--checkpoint',
    ckpt,
    '--prompts',
    prompts,
    '--real',
    real,
    '--out',
    out,
    '--num',
    '2',
    '--steps',
    '2',
    '--backend',
    'wasm',
  ]);
  assert.equal(again.code, 0, again.stderr);
  const j2 = JSON.parse(readFileSync(path.join(out, 'eval.json'), 'utf8')) as {
    fid: number;
    fid_details: { real_from: string };
  };
  assert.equal(j2.fid_details.real_from, 'cache');
  assert.ok(Math.abs(j2.fid - j.fid) < 1e-9 * j.fid, 'same seed, same images, same FID');
  const missing = path.join(tmp, 'bad.tsv');
  await fsp.writeFile(missing, 'Prompt\tChallenge\nx\ty\n');
  const bad = await museEval(['run', '--checkpoint', ckpt, '--prompts', missing, '--out', out, '--backend', 'wasm']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /missing column 'Category'/);
});

test('the evaluation config section is checked, and a run logs fid and clip_score at evaluation.every', () =>
  onBackend('wasm', async () => {
    const configsDir = path.join(ROOT, 'configs');
    const base = ['data.vq_id=vq-test', 'data.text_id=text-test', 'training.save_every=2'];
    const load = (sets: string[]) => loadTrainConfig({ stage: 'tiny', configsDir, sets: [...base, ...sets] });
    assert.throws(
      () => load(['evaluation.every=3', 'evaluation.prompts=p.txt', 'evaluation.real=r']),
      /evaluation\.every must be a multiple of training\.save_every \(2\)/,
    );
    assert.throws(
      () => load(['evaluation.every=2', 'evaluation.real=r']),
      /evaluation\.prompts must name a prompt file/,
    );
    assert.throws(
      () => load(['evaluation.every=2', 'evaluation.prompts=p.txt']),
      /evaluation\.real or evaluation\.clip must be set/,
    );
    assert.throws(() => load(['evaluation.resize=bicubic']), /evaluation\.resize must be one of clean, pytorch-fid/);

    const data = path.join(tmp, 'ds');
    mkdirSync(path.join(data, 'shards'), { recursive: true });
    await writeSyntheticCaches(data, { shards: { 0: 8 }, gridH: 4, gridW: 4, codebookSize: 32, dim: 256 });
    const vqDir = path.join(tmp, 'tiny', 'vq');
    if (!existsSync(vqDir)) await writeTinyCheckpoint(path.join(tmp, 'tiny'));
    const prompts = path.join(tmp, 'train-prompts.txt');
    await fsp.writeFile(prompts, 'a red circle\na blue star\n');
    const real = await folder('real-train', [
      [10, 20, 30],
      [200, 10, 10],
      [10, 200, 10],
    ]);
    const cfg = load([
      `data.path=${data}`,
      `model.vq=${vqDir}`,
      'data.validation_shards=[]',
      'training.batch_size=4',
      'training.validate_every=0',
      'training.max_steps=4',
      'model.transformer={codebook_size: 32, num_vq_tokens: 16, max_position_embeddings: 16, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, ' +
        'intermediate_size: 64, add_cross_attention: true, encoder_hidden_size: 256, norm_type: rmsnorm, use_normformer: false, use_codebook_size_for_output: true}',
      'evaluation.every=2',
      `evaluation.prompts=${prompts}`,
      `evaluation.real=${real}`,
      'evaluation.num_images=3',
      `evaluation.clip=${await clipFolder()}`,
      'sampling.steps=2',
    ]);
    const run = path.join(tmp, 'run-eval');
    await runTraining({
      config: cfg,
      runDir: run,
      dataRoot: tmp,
      out: { write: () => true } as unknown as NodeJS.WriteStream,
    });
    const evals = (await readJsonl(path.join(run, 'log.jsonl'))).filter((r) => 'fid' in r);
    assert.deepEqual(
      evals.map((r) => r.step),
      [2, 4],
    );
    for (const e of evals) {
      assert.ok(typeof e.fid === 'number' && e.fid > 0);
      assert.ok(typeof e.clip_score === 'number' && e.clip_score >= 0);
    }
    assert.ok(existsSync(path.join(run, 'eval.png')));
    assert.ok(existsSync(path.join(run, 'eval', 'step-00000004', 'eval.json')));
    assert.equal((await fsp.readdir(path.join(run, 'eval', 'fid-stats'))).length, 1, 'real statistics computed once');
  }));
