// The superres512 stage on small synthetic caches: a low-res (4x4, base VQ) and a high-res (8x8) token cache
// side by side with the text: exact resume, the loss falls on a tiny batch, and muse-sample --superres runs a
// base checkpoint then the super-res one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onBackend } from '../helpers/backend.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseRunner } from '../../src/train/muse/runner.ts';
import { runTrainingLoop } from '../../src/train/run/loop.ts';
import { writeSyntheticCaches, syntheticToken } from '../helpers/synthetic-cache.ts';
import { quiet, trainMuse, type TrainOptions } from '../helpers/muse-training.ts';
import { BYT5_DIM, SUPERRES } from '../helpers/muse-variants.ts';
import { openPairedDataset, type PairedBatch } from '../../src/train/superres/paired-loader.ts';

const root = path.resolve(import.meta.dirname, '../..');
const configsDir = path.join(root, 'configs');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-train-superres-'));
const DIM = BYT5_DIM;

const dataset = (name: string, shards: Record<number, number>) => SUPERRES.dataset(tmp, name, shards);
const train = (dir: string, runDir: string, sets: string[], o: TrainOptions = {}) =>
  trainMuse(dir, runDir, [...SUPERRES.sets, ...sets], { stage: 'superres512', ...o });

test('the paired loader serves both caches of the same samples; mismatched caches are refused', async () => {
  const dir = await dataset('paired', { 0: 6, 1: 5 });
  const opts = { datasetDir: dir, vqId: 'vq-high', textId: 'text-test', batchSize: 3, seed: 4, shuffleBuffer: 4 };
  const paired = await openPairedDataset(opts, 'vq-low');
  for (let i = 0; i < 4; i++) {
    const b = (await paired.next()) as PairedBatch;
    assert.deepEqual(b.imageShape, [3, 64]);
    assert.deepEqual(b.lowresShape, [3, 16]);
    assert.ok(b.textHidden && b.textShape![2] === DIM);
    b.keys.forEach((key, r) => {
      const [shard, pos] = [Number(key.slice(0, 5)), Number(key.slice(5))];
      assert.equal(b.imageIds[r * 64 + 5], syntheticToken(shard, pos, 5, 32), `high-res row of ${key}`);
      assert.equal(b.lowresIds[r * 16 + 3], syntheticToken(shard, pos, 3, 16), `low-res row of ${key}`);
    });
  }
  // A high-res cache of other samples (shard 1 has 4 rows instead of 5) is caught.
  const bad = path.join(tmp, 'paired-bad');
  mkdirSync(path.join(bad, 'shards'), { recursive: true });
  await writeSyntheticCaches(bad, {
    shards: { 0: 6, 1: 5 },
    vqId: 'vq-low',
    gridH: 4,
    gridW: 4,
    codebookSize: 16,
    dim: DIM,
  });
  await writeSyntheticCaches(bad, {
    shards: { 0: 5, 1: 5 },
    vqId: 'vq-high',
    gridH: 8,
    gridW: 8,
    codebookSize: 32,
    noText: true,
  });
  const p2 = await openPairedDataset({ ...opts, datasetDir: bad, shuffleBuffer: 0 }, 'vq-low');
  await assert.rejects(async () => {
    for (let i = 0; i < 6; i++) await p2.next();
  }, /do not hold the same samples/);
});

test('muse-sample --superres: base tokens condition the super-res model, whose VQGAN decodes the image', async () => {
  await onBackend('wasm', async () => {
    const { VQGAN } = await import('../../src/models/vqgan/index.ts');
    const vqLow = path.join(tmp, 'vq-low');
    const vqHigh = path.join(tmp, 'vq-high');
    const vqCfg = { resolution: 32, hiddenChannels: 32, numResBlocks: 1, zChannels: 4, quantizedEmbedDim: 4 };
    const lo = VQGAN.create({ ...vqCfg, channelMult: [1, 1, 1, 1], numEmbeddings: 16 }, 3); // f8: 4x4 tokens
    const hi = VQGAN.create({ ...vqCfg, channelMult: [1, 1, 1], numEmbeddings: 32 }, 4); // f4: 8x8 tokens
    await lo.save(vqLow);
    await hi.save(vqHigh);
    lo.dispose();
    hi.dispose();
    const dir = await dataset('sampler', { 0: 8 });
    const base = path.join(tmp, 'run-base');
    const baseCfg = loadTrainConfig({
      stage: 'tiny',
      configsDir,
      sets: [
        'model.transformer={codebook_size: 16, num_vq_tokens: 16, max_position_embeddings: 16, hidden_size: 32, num_hidden_layers: 1, ' +
          `num_attention_heads: 2, intermediate_size: 64, add_cross_attention: true, encoder_hidden_size: ${DIM}, use_codebook_size_for_output: true}`,
        `model.vq=${vqLow}`,
        'data.vq_id=vq-low',
        'data.text_id=text-test',
        'data.validation_shards=[]',
        `data.path=${dir}`,
        'training.batch_size=4',
        'training.max_steps=2',
        'training.save_every=2',
        'training.validate_every=0',
        'training.sample_every=0',
      ],
    });
    const baseRunner = await MuseRunner.create({ config: baseCfg, datasetDirs: [dir], runDir: base });
    await runTrainingLoop({ config: baseCfg, runDir: base, runner: baseRunner, out: quiet });
    baseRunner.dispose();
    const sr = path.join(tmp, 'run-sr');
    await train(dir, sr, [
      'training.max_steps=2',
      'training.save_every=2',
      `model.vq=${vqHigh}`,
      `model.lowres_vq=${vqLow}`,
    ]);

    const { sample } = await import('../../src/sample/sample.ts');
    const prompts = ['a red circle', 'a blue star'];
    const a = await sample({ checkpoint: base, superres: sr, prompts, steps: 3, guidance: 2, seed: 1 });
    const again = await sample({ checkpoint: base, superres: sr, prompts, steps: 3, guidance: 2, seed: 1 });
    const plain = await sample({ checkpoint: base, prompts, steps: 3, guidance: 2, seed: 1 });
    const sharp = (await import('sharp')).default;
    for (const [i, im] of a.images.entries()) {
      assert.equal(im.ids.length, 64);
      assert.ok(im.base && im.base.ids.length === 16);
      assert.deepEqual(
        Array.from(im.base.ids),
        Array.from(plain.images[i].ids),
        "the base image is the base model's own",
      );
      assert.ok(im.png.equals(again.images[i].png), 'same seed, same image');
      const meta = await sharp(im.png).metadata();
      assert.equal(meta.width, 32); // the high-res VQGAN's resolution
    }
    // The base checkpoint is refused as a super-res model.
    await assert.rejects(
      sample({ checkpoint: base, superres: base, prompts, steps: 2, seed: 1 }),
      /not a super-res checkpoint/,
    );
  });
});
