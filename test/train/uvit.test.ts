// The MUSE stages with architecture: uvit (MaskGiTUViT, pooled text + micro-conditions by AdaLN) on small
// synthetic token caches with a pooled vector: exact resume, overfitting, and sampling a trained checkpoint.
import { fixturePath } from '../helpers/fixtures.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onBackend, tensorflowSkip } from '../helpers/backend.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseRunner } from '../../src/train/muse/runner.ts';
import { runTrainingLoop } from '../../src/train/run/loop.ts';
import { readJsonl } from '../../src/train/core/index.ts';
import { writeSyntheticCaches } from '../helpers/synthetic-cache.ts';
import { MaskGiTUViT } from '../../src/models/uvit/index.ts';

const root = path.resolve(import.meta.dirname, '../..');
const configsDir = path.join(root, 'configs');
const FIX = fixturePath();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-train-uvit-'));

// The small CLIP text fixture's widths (hidden 64, projection 32), so a checkpoint can sample with it.
const DIM = 64;
const POOLED = 32;

async function dataset(name: string, shards: Record<number, number>): Promise<string> {
  const dir = path.join(tmp, name);
  mkdirSync(path.join(dir, 'shards'), { recursive: true });
  await writeSyntheticCaches(dir, { shards, gridH: 4, gridW: 4, codebookSize: 64, dim: DIM, pooledDim: POOLED });
  return dir;
}

const UVIT = [
  'model.architecture=uvit',
  'model.transformer={codebook_size: 64, vocab_size: 72, num_vq_tokens: 16, hidden_size: 32, in_channels: 16, block_out_channels: [16], ' +
    `num_res_blocks: 1, block_num_heads: 2, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, encoder_hidden_size: ${DIM}, ` +
    `cond_embed_dim: ${POOLED}, micro_cond_encode_dim: 4, micro_cond_embed_dim: 20, default_micro_conds: [64, 64, 0, 0, 6], ` +
    'hidden_dropout: 0.1, attention_dropout: 0.1}',
  'data.vq_id=vq-test',
  'data.text_id=text-test',
  'data.validation_shards=[]',
  'training.batch_size=4',
  'training.validate_every=0',
  'ema.enabled=true',
  'ema.decay=0.9',
];

const quiet = { write: () => true } as unknown as NodeJS.WriteStream;

async function train(dir: string, runDir: string, sets: string[], o: { resume?: string; stopAfter?: number } = {}) {
  const cfg = loadTrainConfig({ stage: 'tiny', configsDir, sets: [...UVIT, `data.path=${dir}`, ...sets] });
  const runner = await MuseRunner.create({ config: cfg, datasetDirs: [dir], runDir });
  try {
    return await runTrainingLoop({ config: cfg, runDir, runner, resume: o.resume, stopAfter: o.stopAfter, out: quiet });
  } finally {
    runner.dispose();
  }
}

const losses = async (runDir: string) => (await readJsonl(path.join(runDir, 'log.jsonl'))).filter((r) => 'loss' in r).map((r) => [r.step, r.loss]);

const tfSkip = await tensorflowSkip();

for (const backend of ['wasm', 'tensorflow'] as const) {
  test(`uvit: a run stopped and resumed gives the same losses and weights as an uninterrupted one (${backend})`, { skip: backend === 'tensorflow' && tfSkip }, async () => {
    await onBackend(backend, async () => {
      const dir = await dataset(`resume-${backend}`, { 0: 10, 1: 9 });
      const sets = ['training.max_steps=8', 'training.save_every=3', 'training.gradient_accumulation_steps=2', 'data.shuffle_buffer=5'];
      const a = path.join(tmp, `run-a-${backend}`);
      const b = path.join(tmp, `run-b-${backend}`);
      await train(dir, a, sets);
      const first = await train(dir, b, sets, { stopAfter: 4 });
      assert.equal(first.step, 4);
      const second = await train(dir, b, sets, { resume: 'latest' });
      assert.equal(second.startStep, 4);
      const la = await losses(a);
      assert.equal(la.length, 8);
      assert.deepEqual(await losses(b), la);
      for (const part of ['transformer', 'ema']) {
        const wa = readFileSync(path.join(a, 'checkpoints/step-00000008', part, 'model.safetensors'));
        const wb = readFileSync(path.join(b, 'checkpoints/step-00000008', part, 'model.safetensors'));
        assert.ok(wa.equals(wb), `${part} weights differ after resume`);
      }
      // The checkpoint is an open-muse MaskGiTUViT folder.
      const cfg = JSON.parse(readFileSync(path.join(a, 'checkpoints/step-00000008/transformer/config.json'), 'utf8'));
      assert.equal(cfg._class_name, 'MaskGiTUViT_v2');
      const m = await MaskGiTUViT.fromSafetensors(path.join(a, 'checkpoints/step-00000008/transformer'));
      assert.deepEqual(m.config.default_micro_conds, [64, 64, 0, 0, 6]);
      m.dispose();
    });
  });
}

test('uvit: the loss falls when overfitting one small batch', async () => {
  await onBackend('wasm', async () => {
    const dir = await dataset('overfit', { 0: 8 });
    const run = path.join(tmp, 'run-overfit');
    await train(dir, run, ['training.max_steps=100', 'training.save_every=1000', 'training.batch_size=8', 'training.cond_dropout_prob=0',
      'optimizer.lr=3e-3', 'lr_scheduler.warmup_steps=5', 'lr_scheduler.schedule=constant', 'training.label_smoothing=0',
      'model.transformer.hidden_dropout=0', 'model.transformer.attention_dropout=0', 'ema.enabled=false']);
    const l = (await losses(run)).map(([, v]) => v as number);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const start = mean(l.slice(0, 5));
    const end = mean(l.slice(-10));
    assert.ok(end < start * 0.5, `loss ${start} -> ${end}`);
  });
});

test('uvit: a trained checkpoint samples through muse-sample (pooled CLIP vector, guidance)', async () => {
  await onBackend('wasm', async () => {
    const clipDir = path.join(tmp, 'clip-small');
    mkdirSync(clipDir);
    await fsp.symlink(path.join(FIX, 'clip-text/weights.safetensors'), path.join(clipDir, 'model.safetensors'));
    await fsp.copyFile(path.join(FIX, 'clip-text/config.json'), path.join(clipDir, 'config.json'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await fsp.copyFile(path.join(FIX, 'tokenizers/clip', f), path.join(clipDir, f));
    const vqDir = path.join(tmp, 'vq-4x4');
    const { VQGAN } = await import('../../src/models/vqgan/index.ts');
    const vq = VQGAN.create({ resolution: 32, hiddenChannels: 32, channelMult: [1, 1, 1, 1], numResBlocks: 1, zChannels: 8, quantizedEmbedDim: 8, numEmbeddings: 64 }, 3);
    await vq.save(vqDir);
    vq.dispose();
    const dir = await dataset('sampler', { 0: 8 });
    const run = path.join(tmp, 'run-sampler');
    await train(dir, run, ['training.max_steps=2', 'training.save_every=2', `model.vq=${vqDir}`, `model.text_encoder=clip:${clipDir}`, 'data.text_max_length=16']);
    const { sample } = await import('../../src/sample/sample.ts');
    const a = await sample({ checkpoint: run, prompts: ['a red circle', 'a blue star'], steps: 4, guidance: 3, seed: 1 });
    const b = await sample({ checkpoint: run, prompts: ['a red circle', 'a blue star'], steps: 4, guidance: 3, seed: 1 });
    assert.equal(a.weights, 'ema');
    assert.equal(a.images.length, 2);
    for (const [i, im] of a.images.entries()) {
      assert.equal(im.ids.length, 16);
      assert.ok(im.png.equals(b.images[i].png), 'same seed, same image');
    }
  });
});
