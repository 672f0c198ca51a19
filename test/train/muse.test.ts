// The MUSE training loop end to end on small synthetic token caches: exact resume, overfitting, NaN stop,
// SIGTERM, corrupt checkpoints, and checkpoints that load back into the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { onBackend, tensorflowSkip } from '../helpers/backend.ts';
import { readEvents } from '../helpers/tfevents.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseRunner } from '../../src/train/muse/runner.ts';
import { runTrainingLoop } from '../../src/train/run/loop.ts';
import { readJsonl } from '../../src/train/core/index.ts';
import { writeSyntheticCaches } from '../helpers/synthetic-cache.ts';
import { MaskGitTransformer } from '../../src/models/transformer/index.ts';

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

const SMALL = [
  'model.transformer={codebook_size: 64, num_vq_tokens: 16, max_position_embeddings: 16, hidden_size: 32, num_hidden_layers: 1, ' +
    'num_attention_heads: 2, intermediate_size: 64, add_cross_attention: true, encoder_hidden_size: 8, norm_type: rmsnorm, ' +
    'use_normformer: false, use_codebook_size_for_output: true, hidden_dropout: 0.1, attention_dropout: 0.1}',
  'data.vq_id=vq-test',
  'data.text_id=text-test',
  'data.validation_shards=[]',
  'training.batch_size=4',
  'training.validate_every=0',
  'ema.enabled=true',
  'ema.decay=0.9',
];

function config(dir: string, sets: string[]) {
  return loadTrainConfig({ stage: 'tiny', configsDir, sets: [...SMALL, `data.path=${dir}`, ...sets] });
}

const quiet = { write: () => true } as unknown as NodeJS.WriteStream;

async function train(dir: string, runDir: string, sets: string[], o: { resume?: string; allowFresh?: boolean; stopAfter?: number; out?: NodeJS.WriteStream } = {}) {
  const cfg = config(dir, sets);
  const runner = await MuseRunner.create({ config: cfg, datasetDirs: [dir], runDir });
  try {
    return await runTrainingLoop({ config: cfg, runDir, runner, resume: o.resume, allowFresh: o.allowFresh, stopAfter: o.stopAfter, out: o.out ?? quiet });
  } finally {
    runner.dispose();
  }
}

const losses = async (runDir: string) => (await readJsonl(path.join(runDir, 'log.jsonl'))).filter((r) => 'loss' in r).map((r) => [r.step, r.loss]);

const tfSkip = await tensorflowSkip();

for (const backend of ['wasm', 'tensorflow'] as const) {
  test(`a run stopped and resumed gives the same losses as an uninterrupted one (with dropout, EMA, accumulation) (${backend})`, { skip: backend === 'tensorflow' && tfSkip }, async () => {
    await onBackend(backend, async () => {
      const dir = await dataset(`resume-${backend}`, { 0: 10, 1: 9 });
      const sets = ['training.max_steps=12', 'training.save_every=4', 'training.gradient_accumulation_steps=2', 'data.shuffle_buffer=5'];
      const a = path.join(tmp, `run-a-${backend}`);
      const b = path.join(tmp, `run-b-${backend}`);
      await train(dir, a, sets);
      const first = await train(dir, b, sets, { stopAfter: 5 });
      assert.equal(first.step, 5);
      assert.equal(first.stoppedBySignal, true);
      const second = await train(dir, b, sets, { resume: 'latest' });
      assert.equal(second.startStep, 5);
      const la = await losses(a);
      assert.equal(la.length, 12);
      assert.deepEqual(await losses(b), la);
      // TensorBoard: one event file per invocation; read in order with TensorBoard's purge rule, the loss is log.jsonl's (float32).
      const tbFiles = readdirSync(path.join(b, 'tensorboard')).sort();
      assert.equal(tbFiles.length, 2);
      const tbLoss = new Map<number, number>();
      for (const f of tbFiles) {
        for (const e of readEvents(path.join(b, 'tensorboard', f))) {
          if (e.session_log?.status === 'START') for (const st of [...tbLoss.keys()]) if (st >= e.step) tbLoss.delete(st);
          const v = e.summary?.value.find((x) => x.tag === 'loss');
          if (v) tbLoss.set(e.step, v.simple_value!);
        }
      }
      assert.deepEqual([...tbLoss], la.map(([st, l]) => [st, Math.fround(l as number)]));
      // Final weights and EMA weights are identical too.
      for (const part of ['transformer', 'ema']) {
        const wa = readFileSync(path.join(a, 'checkpoints/step-00000012', part, 'model.safetensors'));
        const wb = readFileSync(path.join(b, 'checkpoints/step-00000012', part, 'model.safetensors'));
        assert.ok(wa.equals(wb), `${part} weights differ after resume`);
      }
    });
  });
}

test('the loss falls when overfitting one small batch', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('overfit', { 0: 8 });
    const run = path.join(tmp, 'run-overfit');
    await train(dir, run, ['training.max_steps=80', 'training.save_every=1000', 'training.batch_size=8', 'training.cond_dropout_prob=0',
      'optimizer.lr=3e-3', 'lr_scheduler.warmup_steps=5', 'lr_scheduler.schedule=constant', 'training.label_smoothing=0',
      'model.transformer.hidden_dropout=0', 'model.transformer.attention_dropout=0']);
    const l = (await losses(run)).map(([, v]) => v as number);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const start = mean(l.slice(0, 5));
    const end = mean(l.slice(-10));
    assert.ok(start > Math.log(64) - 0.5, `initial loss ${start} should be near ln(64)`);
    assert.ok(end < start * 0.5, `loss ${start} -> ${end}`);
    assert.ok(existsSync(path.join(run, 'loss.png')));
  });
});

test('a non-finite loss stops the run with a message and keeps the last good checkpoint', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('nan', { 0: 8 });
    const run = path.join(tmp, 'run-nan');
    await assert.rejects(
      train(dir, run, ['training.max_steps=20', 'training.save_every=1', 'optimizer.lr=1e36', 'lr_scheduler.warmup_steps=0',
        'training.max_grad_norm=null', 'lr_scheduler.schedule=constant']),
      /the loss is (NaN|Infinity)|gradient norm (NaN|Infinity)/,
    );
    const log = await readJsonl(path.join(run, 'log.jsonl'));
    const error = log.find((r) => 'error' in r)!;
    assert.match(String(error.error), /stopping without applying this update/);
    const ckpts = readdirSync(path.join(run, 'checkpoints')).filter((n) => n.startsWith('step-'));
    const lastGood = Math.max(...log.filter((r) => typeof r.loss === 'number' && Number.isFinite(r.loss)).map((r) => r.step as number));
    assert.ok(ckpts.includes(`step-${String(lastGood).padStart(8, '0')}`), `checkpoints ${ckpts} should include step ${lastGood}`);
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
    await assert.rejects(train(dir, run, sets, { resume: 'latest' }), /--resume latest: .*run-fresh has no checkpoint, so there is nothing to resume.*--allow-fresh/);
    const r = await train(dir, run, sets, { resume: 'latest', allowFresh: true });
    assert.deepEqual([r.startStep, r.step], [0, 2]);
    const again = await train(dir, run, ['training.max_steps=3', 'training.save_every=3'], { resume: 'latest' });
    assert.equal(again.startStep, 2, 'with a checkpoint, --resume latest continues it');
  });
  const missing = path.join(tmp, 'run-typo');
  const cli = spawnSync(process.execPath, [path.join(root, 'bin/muse-train.js'), '--stage', 'tiny', '--out', missing, '--resume', 'latest', '--backend', 'cpu',
    ...[...SMALL, `data.path=${dir}`].flatMap((s) => ['--set', s])], { encoding: 'utf8' });
  assert.equal(cli.status, 1, cli.stderr);
  assert.match(cli.stderr, /muse-train: --resume latest: the run folder .*run-typo does not exist, so there is nothing to resume/);
  assert.equal(existsSync(missing), false, 'the refusal creates no folder');
});

test('muse-train saves a checkpoint on SIGTERM after finishing the current step', async () => {
  const dir = await dataset('sigterm', { 0: 16 });
  const run = path.join(tmp, 'run-sigterm');
  const sets = [...SMALL, `data.path=${dir}`, 'training.max_steps=100000', 'training.save_every=100000'];
  const child = spawn(process.execPath, [path.join(root, 'bin/muse-train.js'), '--stage', 'tiny', '--out', run, '--backend', 'wasm',
    ...sets.flatMap((s) => ['--set', s])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const log = path.join(run, 'log.jsonl');
  const deadline = Date.now() + 60_000;
  while (!(existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 3)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`no training progress: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(-1);
    }, 60_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  assert.equal(code, 0, stderr);
  assert.match(stderr, /SIGTERM: finishing the current step/);
  const steps = (await readJsonl(log)).filter((r) => 'loss' in r).map((r) => r.step as number);
  const last = Math.max(...steps);
  assert.ok(existsSync(path.join(run, 'checkpoints', `step-${String(last).padStart(8, '0')}`, 'trainer_state.json')), stderr);
  assert.ok(existsSync(path.join(run, 'config.yaml')));
});

test('a trained checkpoint samples through the sampler (EMA weights, its VQGAN, the text encoder), also once the run folder is copied elsewhere', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('sampler', { 0: 8 }, 256); // byt5-tiny's width, which the sampler encodes prompts with
    const vqDir = path.join(tmp, 'vq-4x4');
    const { VQGAN } = await import('../../src/models/vqgan/index.ts');
    const vq = VQGAN.create({ resolution: 32, hiddenChannels: 32, channelMult: [1, 1, 1, 1], numResBlocks: 1, zChannels: 8, quantizedEmbedDim: 8, numEmbeddings: 64 }, 3);
    await vq.save(vqDir);
    vq.dispose();
    const run = path.join(tmp, 'run-sampler');
    await train(dir, run, ['training.max_steps=2', 'training.save_every=2', `model.vq=${vqDir}`, 'model.transformer.encoder_hidden_size=256']);
    const { sample } = await import('../../src/sample/sample.ts');
    const a = await sample({ checkpoint: run, prompts: ['a red circle', 'a blue star'], steps: 4, guidance: 3, seed: 1 });
    const b = await sample({ checkpoint: run, prompts: ['a red circle', 'a blue star'], steps: 4, guidance: 3, seed: 1 });
    assert.equal(a.weights, 'ema');
    assert.equal(a.images.length, 2);
    for (const [i, im] of a.images.entries()) {
      assert.equal(im.ids.length, 16);
      assert.ok(im.png.equals(b.images[i].png), 'same seed, same image');
    }
    // The checkpoint carries its VQGAN and names it relatively: the run folder copied elsewhere, with the
    // original run and VQGAN folder gone, samples the same images.
    const ckpt = path.join(run, 'checkpoints', 'step-00000002');
    assert.equal(JSON.parse(readFileSync(path.join(ckpt, 'sampling.json'), 'utf8')).vq, 'vq');
    assert.ok(readFileSync(path.join(ckpt, 'vq', 'model.safetensors')).equals(readFileSync(path.join(vqDir, 'model.safetensors'))));
    assert.ok('vq/model.safetensors' in JSON.parse(readFileSync(path.join(ckpt, 'trainer_state.json'), 'utf8')).files, 'verified on resume');
    const moved = path.join(mkdtempSync(path.join(os.tmpdir(), 'muse-moved-')), 'copied-run');
    cpSync(run, moved, { recursive: true });
    renameSync(run, `${run}-gone`);
    renameSync(vqDir, `${vqDir}-gone`);
    try {
      const c = await sample({ checkpoint: moved, prompts: ['a red circle', 'a blue star'], steps: 4, guidance: 3, seed: 1 });
      for (const [i, im] of c.images.entries()) assert.ok(im.png.equals(a.images[i].png), 'the moved run samples the same image');
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
    const { VQGAN } = await import('../../src/models/vqgan/index.ts');
    const vqDir = path.join(tmp, 'vq-untokenized');
    const vq = VQGAN.create({ resolution: 32, hiddenChannels: 32, channelMult: [1, 1, 1, 1], numResBlocks: 1, zChannels: 8, quantizedEmbedDim: 8, numEmbeddings: 64 }, 4);
    await vq.save(vqDir);
    vq.dispose();
    const cfg = loadTrainConfig({ stage: 'tiny', configsDir, sets: [...SMALL.filter((s) => !s.startsWith('data.vq_id')), `data.path=${dir}`, `model.vq=${vqDir}`] });
    await assert.rejects(MuseRunner.create({ config: cfg, datasetDirs: [dir], runDir: path.join(tmp, 'run-cache-ids') }),
      /no image token cache made with .*vq-untokenized \(found vq-test\); run muse-data tokenize .* --vq /);
  });
});
