// Tensors are disposed on every training path: 1,000 optimisation steps of a small MUSE transformer (the real
// trainer: masking, accumulation, clipping, AdamW, EMA) leave tf.memory() where the first steps left it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/backend.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseTrainer } from '../../src/train/muse/trainer.ts';
import { MaskGitTransformer } from '../../src/models/transformer/index.ts';
import type { Batch } from '../../src/train/data/batch.ts';

const configsDir = path.resolve(import.meta.dirname, '../..', 'configs');

test('1,000 training steps on cpu: no tensor or byte growth in tf.memory()', async () => {
  await onBackend('cpu', async () => {
    const cfg = loadTrainConfig({
      stage: 'tiny',
      configsDir,
      sets: [
        'model.transformer={codebook_size: 16, num_vq_tokens: 4, max_position_embeddings: 4, hidden_size: 8, num_hidden_layers: 1, ' +
          'num_attention_heads: 2, intermediate_size: 16, add_cross_attention: true, encoder_hidden_size: 4, norm_type: rmsnorm, ' +
          'use_codebook_size_for_output: true, hidden_dropout: 0.1, attention_dropout: 0.1}',
        'training.batch_size=2',
        'training.gradient_accumulation_steps=2',
        'ema.update_after_step=0',
        'training.max_steps=1000',
      ],
    });
    const B = 2;
    const batch: Batch = {
      size: B,
      epoch: 0,
      keys: ['a', 'b'],
      imageIds: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
      imageShape: [B, 4],
      gridH: 2,
      gridW: 2,
      textHidden: Float32Array.from({ length: B * 3 * 4 }, (_, i) => Math.sin(i)),
      textShape: [B, 3, 4],
      textMask: Uint8Array.from([1, 1, 0, 1, 1, 1]),
      textLengths: Int32Array.from([2, 3]),
    };
    const model = new MaskGitTransformer(cfg.model.transformer, { seed: 0 });
    const trainer = new MuseTrainer(model, cfg);
    try {
      let first: tf.MemoryInfo | undefined;
      let lastLoss = NaN;
      for (let step = 0; step < 1000; step++) {
        lastLoss = (await trainer.step(batch, step)).loss;
        if (step === 2) first = tf.memory();
      }
      const end = tf.memory();
      assert.ok(Number.isFinite(lastLoss), `loss ${lastLoss}`);
      assert.equal(
        end.numTensors,
        first!.numTensors,
        `tensors: ${first!.numTensors} after 3 steps, ${end.numTensors} after 1,000`,
      );
      assert.equal(
        end.numBytes,
        first!.numBytes,
        `bytes: ${first!.numBytes} after 3 steps, ${end.numBytes} after 1,000`,
      );
    } finally {
      trainer.dispose();
      model.dispose();
    }
  });
});
