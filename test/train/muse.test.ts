// The MUSE training loop end to end on small synthetic token caches: NaN stop, SIGTERM, corrupt checkpoints,
// --resume without a checkpoint, checkpoints that load back into the model and sample. Exact resume and
// overfitting, for every variant: muse-variants.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/backend.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseRunner } from '../../src/train/muse/runner.ts';
import { runTrainingLoop } from '../../src/train/run/loop.ts';
import { readJsonl } from '../../src/train/core/index.ts';
import { writeSyntheticCaches } from '../helpers/synthetic-cache.ts';
import { losses, quiet, trainMuse, type TrainOptions, sampleTwiceAlike } from '../helpers/muse-training.ts';
import { TRANSFORMER } from '../helpers/muse-variants.ts';
import { MaskGitTransformer } from '../../src/models/transformer/index.ts';
import { runCli } from '../helpers/cli.ts';
import { writeTinyVqgan } from '../helpers/tiny-checkpoint.ts';

const root = path.resolve(import.meta.dirname, '../..');
const configsDir = path.join(root, 'configs');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-train-muse-'));

/** A dataset folder with synthetic caches: 4x4 tokens of 64 codes, 8-dim text states. */
async function dataset(name: string, shards: Record<number, number>, dim = 8): Promise<string> {
  const dir = path.join(tmp, name);
  mkdirSync(path.join(dir, 'shards'), { recursive: true });
  await writeSyntheticCaches(dir, { shards, gridH: 4, gridW: 4, codebookSize: 64, dim });
  return dir;
}

const SMALL = TRANSFORMER.sets;

function config(dir: string, sets: string[]) {
  return loadTrainConfig({ stage: 'tiny', configsDir, sets: [...SMALL, `data.path=${dir}`, ...sets] });
}

const train = (dir: string, runDir: string, sets: string[], o: TrainOptions = {}) =>
  trainMuse(dir, runDir, [...SMALL, ...sets], o);

test('a non-finite loss stops the run with a message and keeps the last good checkpoint', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('nan', { 0: 8 });
    const run = path.join(tmp, 'run-nan');
    await assert.rejects(
      train(dir, run, [
        'training.max_steps=20',
        'training.save_every=1',
        'optimizer.lr=1e36',
        'lr_scheduler.warmup_steps=0',
        'training.max_grad_norm=null',
        'lr_scheduler.schedule=constant',
      ]),
      /the loss is (NaN|Infinity)|gradient norm (NaN|Infinity)/,
    );
    const log = await readJsonl(path.join(run, 'log.jsonl'));
    const error = log.find((r) => 'error' in r)!;
    assert.match(String(error.error), /stopping without applying this update/);
    const ckpts = readdirSync(path.join(run, 'checkpoints')).filter((n) => n.startsWith('step-'));
    const lastGood = Math.max(
      ...log.filter((r) => typeof r.loss === 'number' && Number.isFinite(r.loss)).map((r) => r.step as number),
    );
    assert.ok(
      ckpts.includes(`step-${String(lastGood).padStart(8, '0')}`),
      `checkpoints ${ckpts} should include step ${lastGood}`,
    );
    assert.ok(!ckpts.includes(`step-${String(lastGood + 1).padStart(8, '0')}`));
  });
});

test('a corrupt newest checkpoint is refused with a message and the previous one resumed', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('corrupt', { 0: 12 });
    const run = path.join(tmp, 'run-corrupt');
    const sets = ['training.max_steps=10', 'training.save_every=5'];
    await train(dir, run, sets);
    const before = await losses(run);
    const file = path.join(run, 'checkpoints/step-00000010/transformer/model.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(file, bytes);
    const messages: string[] = [];
    const out = { write: (s: string) => messages.push(s) } as unknown as NodeJS.WriteStream;
    const r = await train(dir, run, sets, { resume: 'latest', out });
    assert.equal(r.startStep, 5);
    assert.match(messages.join(''), /step-00000010.*model\.safetensors/s);
    assert.deepEqual(await losses(run), before, 'steps 6-10 redone from step 5 give the same losses');
  });
});

test('a checkpoint loads back into MaskGitTransformer by reference names', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('load', { 0: 8 });
    const run = path.join(tmp, 'run-load');
    const cfg = config(dir, ['training.max_steps=3', 'training.save_every=3']);
    const runner = await MuseRunner.create({ config: cfg, datasetDirs: [dir], runDir: run });
    try {
      await runTrainingLoop({ config: cfg, runDir: run, runner, out: quiet });
      const loaded = await MaskGitTransformer.fromSafetensors(path.join(run, 'checkpoints/step-00000003/transformer'));
      for (const [name, v] of runner.model.variables) {
        assert.deepEqual(loaded.variables.get(name)!.dataSync(), v.dataSync(), name);
      }
      loaded.dispose();
      const sampling = JSON.parse(readFileSync(path.join(run, 'checkpoints/step-00000003/sampling.json'), 'utf8'));
      assert.deepEqual(sampling.grid, [4, 4]);
      assert.equal(sampling.text_encoder, 'byt5-tiny');
      const state = JSON.parse(readFileSync(path.join(run, 'checkpoints/step-00000003/trainer_state.json'), 'utf8'));
      assert.equal(state.step, 3);
      assert.equal(state.config.training.max_steps, 3);
      assert.ok(state.loader && state.files['optimizer.safetensors']);
    } finally {
      runner.dispose();
    }
    assert.equal(tf.getBackend(), 'wasm');
  });
});

test('--resume latest on a run without checkpoints is refused (muse-train before loading anything); --allow-fresh starts it', async () => {
  const dir = await dataset('fresh', { 0: 8 });
  const sets = ['training.max_steps=2', 'training.save_every=2'];
  await onBackend('wasm', async () => {
    const run = path.join(tmp, 'run-fresh');
    mkdirSync(run);
    await assert.rejects(
      train(dir, run, sets, { resume: 'latest' }),
      /--resume latest: .*run-fresh has no checkpoint, so there is nothing to resume.*--allow-fresh/,
    );
    const r = await train(dir, run, sets, { resume: 'latest', allowFresh: true });
    assert.deepEqual([r.startStep, r.step], [0, 2]);
    const again = await train(dir, run, ['training.max_steps=3', 'training.save_every=3'], { resume: 'latest' });
    assert.equal(again.startStep, 2, 'with a checkpoint, --resume latest continues it');
  });
  const missing = path.join(tmp, 'run-typo');
  const cli = await runCli('muse-train', [
    '--stage',
    'tiny',
    '--out',
    missing,
    '--resume',
    'latest',
    '--backend',
    'cpu',
    ...[...SMALL, `data.path=${dir}`].flatMap((s) => ['--set', s]),
  ]);
  assert.equal(cli.code, 1, cli.stderr);
  assert.match(
    cli.stderr,
    /muse-train: --resume latest: the run folder .*run-typo does not exist, so there is nothing to resume/,
  );
  assert.equal(existsSync(missing), false, 'the refusal creates no folder');
});

test('muse-train saves a checkpoint on SIGTERM after finishing the current step', async () => {
  const dir = await dataset('sigterm', { 0: 16 });
  const run = path.join(tmp, 'run-sigterm');
  const sets = [...SMALL, `data.path=${dir}`, 'training.max_steps=100000', 'training.save_every=100000'];
  const training = runCli('muse-train', [
    '--stage',
    'tiny',
    '--out',
    run,
    '--backend',
    'wasm',
    ...sets.flatMap((s) => ['--set', s]),
  ]);
  const { child } = training;
  const log = path.join(run, 'log.jsonl');
  const deadline = Date.now() + 60_000;
  while (!(existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 3)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      training.kill();
      throw new Error(`no training progress: ${(await training).stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  training.kill('SIGTERM');
  const timer = setTimeout(() => training.kill(), 60_000);
  const { code, stderr } = await training;
  clearTimeout(timer);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /SIGTERM: finishing the current step/);
  const steps = (await readJsonl(log)).filter((r) => 'loss' in r).map((r) => r.step as number);
  const last = Math.max(...steps);
  assert.ok(
    existsSync(path.join(run, 'checkpoints', `step-${String(last).padStart(8, '0')}`, 'trainer_state.json')),
    stderr,
  );
  assert.ok(existsSync(path.join(run, 'config.yaml')));
});

test('a trained checkpoint samples through the sampler (EMA weights, its VQGAN, the text encoder), also once the run folder is copied elsewhere', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('sampler', { 0: 8 }, 256); // byt5-tiny's width, which the sampler encodes prompts with
    const vqDir = path.join(tmp, 'vq-4x4');
    await writeTinyVqgan(vqDir);
    const run = path.join(tmp, 'run-sampler');
    await train(dir, run, [
      'training.max_steps=2',
      'training.save_every=2',
      `model.vq=${vqDir}`,
      'model.transformer.encoder_hidden_size=256',
    ]);
    const a = await sampleTwiceAlike(run);
    assert.equal(a.weights, 'ema');
    // The checkpoint carries its VQGAN and names it relatively: the run folder copied elsewhere, with the
    // original run and VQGAN folder gone, samples the same images.
    const ckpt = path.join(run, 'checkpoints', 'step-00000002');
    assert.equal(JSON.parse(readFileSync(path.join(ckpt, 'sampling.json'), 'utf8')).vq, 'vq');
    assert.ok(
      readFileSync(path.join(ckpt, 'vq', 'model.safetensors')).equals(
        readFileSync(path.join(vqDir, 'model.safetensors')),
      ),
    );
    assert.ok(
      'vq/model.safetensors' in JSON.parse(readFileSync(path.join(ckpt, 'trainer_state.json'), 'utf8')).files,
      'verified on resume',
    );
    const moved = path.join(mkdtempSync(path.join(os.tmpdir(), 'muse-moved-')), 'copied-run');
    cpSync(run, moved, { recursive: true });
    renameSync(run, `${run}-gone`);
    renameSync(vqDir, `${vqDir}-gone`);
    try {
      const { sample } = await import('../../src/sample/sample.ts');
      const c = await sample({
        checkpoint: moved,
        prompts: ['a red circle', 'a blue star'],
        steps: 4,
        guidance: 3,
        seed: 1,
      });
      for (const [i, im] of c.images.entries())
        assert.ok(im.png.equals(a.images[i].png), 'the moved run samples the same image');
    } finally {
      renameSync(`${run}-gone`, run);
      renameSync(`${vqDir}-gone`, vqDir);
      rmSync(path.dirname(moved), { recursive: true, force: true });
    }
  });
});

test('the token cache is matched to model.vq by its weights; other weights are refused with the fix', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('cache-ids', { 0: 4 });
    const vqDir = await writeTinyVqgan(path.join(tmp, 'vq-untokenized'), 4);
    const cfg = loadTrainConfig({
      stage: 'tiny',
      configsDir,
      sets: [...SMALL.filter((s) => !s.startsWith('data.vq_id')), `data.path=${dir}`, `model.vq=${vqDir}`],
    });
    await assert.rejects(
      MuseRunner.create({ config: cfg, datasetDirs: [dir], runDir: path.join(tmp, 'run-cache-ids') }),
      /no image token cache made with .*vq-untokenized \(found vq-test\); run muse-data tokenize .* --vq /,
    );
  });
});
