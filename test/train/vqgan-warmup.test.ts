// VqganTrainer autoencoder warm-up and k-means++ codebook initialisation (tiny VQGAN on wasm).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/backend.ts';
import { VQGAN, type VqganConfig } from '../../src/models/vqgan/index.ts';
import { VqganTrainer } from '../../src/train/vqgan/index.ts';

const TINY: Partial<VqganConfig> = {
  resolution: 16,
  hiddenChannels: 32,
  channelMult: [1, 2],
  numResBlocks: 1,
  zChannels: 8,
  quantizedEmbedDim: 8,
  numEmbeddings: 16,
};

/** Flat colours with a square whose colour and place vary per image (deterministic). */
function images(n: number, res: number): tf.Tensor4D {
  const v = new Float32Array(n * res * res * 3);
  for (let b = 0; b < n; b++) {
    const bg = [((b * 37) % 100) / 100, ((b * 53) % 100) / 100, 0.3];
    const fg = [0.9, ((b * 29) % 100) / 100, ((b * 71) % 100) / 100];
    const x0 = (b * 3) % (res / 2);
    for (let y = 0; y < res; y++)
      for (let x = 0; x < res; x++) {
        const inside = x >= x0 && x < x0 + res / 2 && y >= 4 && y < 4 + res / 2;
        for (let c = 0; c < 3; c++) v[((b * res + y) * res + x) * 3 + c] = inside ? fg[c] : bg[c];
      }
  }
  return tf.tensor4d(v, [n, res, res, 3]);
}

/** Mean squared distance from each latent of x to its nearest code, and how many codes are used. */
function quantizationError(vq: VQGAN, x: tf.Tensor4D): { mse: number; used: number } {
  return tf.tidy(() => {
    const lat = vq.encoder(x).reshape([-1, vq.config.zChannels]) as tf.Tensor2D;
    const d = vq.distances(lat);
    const mse = tf.mean(tf.min(d, 1)).dataSync()[0] / vq.config.zChannels;
    const used = new Set(tf.argMin(d, 1).dataSync()).size;
    return { mse, used };
  });
}

test('trainer: autoencoder warm-up leaves the codebook alone, then k-means++ fits it to the latents', async () => {
  await onBackend('wasm', async () => {
    const vq = VQGAN.create(TINY, 3);
    const trainer = new VqganTrainer(vq, {
      seed: 5,
      autoencoderWarmupSteps: 2,
      codebookInit: 'kmeans++',
      restartAfterSteps: 1,
    });
    const x = images(8, 16);
    const codebook0 = vq.param('quantize.embedding.weight').dataSync().slice();
    const conv0 = vq.param('decoder.conv_out.weight').dataSync().slice();
    for (let s = 0; s < 2; s++) {
      const m = await trainer.step(x, s, 1e-3);
      assert.equal(m.codebook_loss, 0, `step ${s} is unquantized`);
      assert.equal(m.dead_codes_restarted, 0, 'no restarts before the codebook is in use');
    }
    assert.deepEqual(
      vq.param('quantize.embedding.weight').dataSync(),
      codebook0,
      'warm-up does not touch the codebook',
    );
    assert.notDeepEqual(vq.param('decoder.conv_out.weight').dataSync(), conv0, 'warm-up trains the decoder');

    const before = quantizationError(vq, x);
    // lr 0: the codebook after step 2 is exactly the initialisation (the encoder is unchanged too).
    const m2 = await trainer.step(x, 2, 0);
    assert.ok(m2.codebook_loss > 0, 'step 2 is quantized');
    const after = quantizationError(vq, x);
    assert.ok(after.mse < before.mse / 2, `quantization error ${before.mse} -> ${after.mse}`);
    assert.ok(after.used >= 12, `k-means++ codes are all near some latent (${after.used} of 16 used)`);
    x.dispose();
    trainer.dispose();
    vq.dispose();
  });
});

test('trainer: k-means++ without warm-up runs at step 0 and is deterministic for the seed', async () => {
  await onBackend('wasm', async () => {
    const x = images(4, 16);
    const run = async () => {
      const vq = VQGAN.create(TINY, 1);
      const trainer = new VqganTrainer(vq, { seed: 9, codebookInit: 'kmeans++' });
      await trainer.step(x, 0, 0);
      const cb = vq.param('quantize.embedding.weight').dataSync().slice();
      trainer.dispose();
      vq.dispose();
      return cb;
    };
    const a = await run();
    const fresh = VQGAN.create(TINY, 1);
    assert.notDeepEqual(a, fresh.param('quantize.embedding.weight').dataSync(), 'the codebook was replaced at step 0');
    fresh.dispose();
    assert.deepEqual(await run(), a);
    x.dispose();
  });
});

test('trainer: bad warm-up / init options are named', () => {
  const vq = VQGAN.create(TINY, 0);
  assert.throws(
    () => new VqganTrainer(vq, { seed: 0, autoencoderWarmupSteps: -1 }),
    /autoencoderWarmupSteps must be an integer >= 0/,
  );
  assert.throws(() => new VqganTrainer(vq, { seed: 0, autoencoderWarmupSteps: 1.5 }), /autoencoderWarmupSteps/);
  assert.throws(
    () => new VqganTrainer(vq, { seed: 0, codebookInit: 'random' as 'none' }),
    /codebookInit must be 'none' or 'kmeans\+\+'/,
  );
  vq.dispose();
});
