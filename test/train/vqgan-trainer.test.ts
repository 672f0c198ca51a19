// VqganTrainer on wasm with a tiny VQGAN: overfitting, dead-code restarts, exact resume, reconstruction grid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { onBackend, tensorflowSkip } from '../helpers/backend.ts';
import { VQGAN, type VqganConfig } from '../../src/models/vqgan/index.ts';
import { VqganTrainer, reconstructionGrid, type VqganTrainerOptions } from '../../src/train/vqgan/index.ts';

const TINY: Partial<VqganConfig> = {
  resolution: 16,
  hiddenChannels: 32,
  channelMult: [1, 2],
  numResBlocks: 1,
  zChannels: 16,
  quantizedEmbedDim: 16,
  numEmbeddings: 32,
};

/** Images with a bright square on a coloured background (deterministic). */
function images(n: number, res: number, offset = 0): tf.Tensor4D {
  const v = new Float32Array(n * res * res * 3);
  for (let b = 0; b < n; b++) {
    const k = b + offset;
    const bg = [((k * 37) % 100) / 100, ((k * 53) % 100) / 100, 0.3];
    const x0 = (k * 3) % (res / 2);
    for (let y = 0; y < res; y++)
      for (let x = 0; x < res; x++) {
        const inside = x >= x0 && x < x0 + res / 2 && y >= 4 && y < 4 + res / 2;
        for (let c = 0; c < 3; c++) v[((b * res + y) * res + x) * 3 + c] = inside ? 0.9 : bg[c];
      }
  }
  return tf.tensor4d(v, [n, res, res, 3]);
}

test('trainer: the loss decreases when overfitting a tiny batch; no tensors leak per step', async () => {
  await onBackend('wasm', async () => {
    const vq = VQGAN.create(TINY, 1);
    const trainer = new VqganTrainer(vq, { seed: 1, optimizer: { beta1: 0.9, beta2: 0.99 } });
    const x = images(4, 16);
    const first = await trainer.step(x, 0, 2e-3);
    const before = tf.memory().numTensors;
    let last = first;
    for (let s = 1; s < 40; s++) last = await trainer.step(x, s, 2e-3);
    assert.equal(tf.memory().numTensors, before, 'tensor count is stable across steps');
    assert.ok(last.rec_loss < 0.5 * first.rec_loss, `rec loss ${first.rec_loss} -> ${last.rec_loss}`);
    for (const k of ['loss', 'grad_norm', 'perplexity', 'codebook_usage'] as const)
      assert.ok(Number.isFinite(last[k]), k);
    const v = await trainer.validate(x);
    assert.ok(v.rec_loss < first.rec_loss);
    x.dispose();
    trainer.dispose();
    vq.dispose();
  });
});

test('trainer: dead-code restart replaces exactly the codes unused for restartAfterSteps', async () => {
  await onBackend('wasm', async () => {
    const vq = VQGAN.create({ ...TINY, numEmbeddings: 128 }, 2);
    const trainer = new VqganTrainer(vq, { seed: 5, restartAfterSteps: 1 });
    const x = images(2, 16); // 2 x 8 x 8 = 128 tokens, far from all 128 codes
    const m0 = await trainer.step(x, 0, 0); // lr 0: only restarts can change the codebook
    assert.equal(m0.dead_codes_restarted, 0, 'nothing is dead yet at step 0');
    const before = vq.param('quantize.embedding.weight').arraySync() as number[][];
    const used = new Set(vq.encode(x).dataSync());
    const m1 = await trainer.step(x, 1, 0);
    const after = vq.param('quantize.embedding.weight').arraySync() as number[][];
    assert.equal(m1.dead_codes_restarted, 128 - used.size);
    const latents = tf.tidy(() => vq.encoder(x).reshape([-1, 16]).arraySync()) as number[][];
    for (let c = 0; c < 128; c++) {
      if (used.has(c)) assert.deepEqual(after[c], before[c], `used code ${c} kept`);
      else
        assert.ok(
          latents.some((l) => l.every((v, i) => Math.abs(v - after[c][i]) < 1e-6)),
          `code ${c} is an encoder output`,
        );
    }
    assert.equal(m1.codebook_usage, 1, 'restarted codes count as fresh');
    x.dispose();
    trainer.dispose();
    vq.dispose();
  });
});

const tfSkip = await tensorflowSkip();

for (const backend of ['wasm', 'tensorflow'] as const) {
  test(
    `trainer: save + resume continues exactly (GAN, EMA, restarts, accumulation); recon grid PNG (${backend})`,
    { skip: backend === 'tensorflow' && tfSkip },
    async () => {
      await onBackend(backend, async () => {
        const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-vqgan-train-'));
        try {
          const opts: VqganTrainerOptions = {
            seed: 9,
            maxGradNorm: 1,
            restartAfterSteps: 2,
            ema: { decay: 0.9 },
            gan: { config: { ndf: 8, nLayers: 1 }, start: 2, loss: 'hinge' },
          };
          const vq = VQGAN.create(TINY, 4);
          const a = new VqganTrainer(vq, opts);
          const batch = (s: number) => [images(2, 16, s * 2), images(2, 16, s * 2 + 1)];
          const run = async (t: VqganTrainer, s: number) => {
            const b = batch(s);
            const m = await t.step(b, s, 1e-3);
            tf.dispose(b);
            return m;
          };
          await run(a, 0);
          await run(a, 1);
          await a.save(dir);
          const rest = [await run(a, 2), await run(a, 3), await run(a, 4)];
          assert.ok(
            rest[0].g_loss !== undefined && rest[0].d_loss !== undefined && rest[0].d_weight! >= 0,
            'GAN on from step 2',
          );
          const b = await VqganTrainer.resume(dir, opts);
          const again = [await run(b, 2), await run(b, 3), await run(b, 4)];
          assert.deepEqual(again, rest);
          const wa = vq.namedVariables();
          for (const [n, v] of b.vq.namedVariables()) assert.deepEqual(v.dataSync(), wa.get(n)!.dataSync(), n);
          assert.deepEqual(await b.validate(images(2, 16)), await a.validate(images(2, 16)));

          const px = images(3, 16);
          const out = path.join(dir, 'grid.png');
          assert.deepEqual(await reconstructionGrid(vq, px, out), { width: 48, height: 32 });
          const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
          assert.deepEqual([info.width, info.height, info.channels], [48, 32, 3]);
          // Top row: the originals (image 1, pixel (0, 0)).
          const orig = px.slice([1, 0, 0, 0], [1, 1, 1, 3]).dataSync();
          for (let c = 0; c < 3; c++) assert.equal(data[16 * 3 + c], Math.round(orig[c] * 255));
          px.dispose();
          a.dispose();
          b.dispose();
          b.vq.dispose();
          vq.dispose();
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    },
  );
}
