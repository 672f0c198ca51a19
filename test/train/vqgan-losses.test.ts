// VQGAN stage pieces: discriminator, perceptual loss, GAN losses, adaptive weight, codebook usage and restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '../../src/runtime/backend.ts';
import { saveSafetensors } from '../../src/models/safetensors.ts';
import { VQGAN } from '../../src/models/vqgan/index.ts';
import {
  CodebookUsage,
  PatchDiscriminator,
  VGG16_CHANNELS,
  VGG16_CONV_INDICES,
  VggPerceptual,
  VqganTrainer,
  adaptiveWeight,
  discriminatorLoss,
  discriminatorOutputSize,
  generatorLoss,
  reconstructionLoss,
  restartCodes,
} from '../../src/train/vqgan/index.ts';

const close = (a: number, b: number, rel = 1e-3, abs = 1e-6) => Math.abs(a - b) <= abs + rel * Math.abs(b);

test('discriminator: taming names, torch shapes, patch output size, clear error when too small', () => {
  const d = new PatchDiscriminator({ ndf: 8, nLayers: 3 }, 1);
  const t = d.torchTensors();
  const shapes = Object.fromEntries(Object.entries(t).map(([n, v]) => [n, v.shape]));
  tf.dispose(Object.values(t));
  assert.deepEqual(shapes, {
    'main.0.weight': [8, 3, 4, 4],
    'main.0.bias': [8],
    'main.2.weight': [16, 8, 4, 4],
    'main.3.weight': [16],
    'main.3.bias': [16],
    'main.5.weight': [32, 16, 4, 4],
    'main.6.weight': [32],
    'main.6.bias': [32],
    'main.8.weight': [64, 32, 4, 4],
    'main.9.weight': [64],
    'main.9.bias': [64],
    'main.11.weight': [1, 64, 4, 4],
    'main.11.bias': [1],
  });
  // 32 -> 16 -> 8 -> 4 (stride 2) -> 3 -> 2 (stride 1, k4, pad 1)
  assert.equal(discriminatorOutputSize(d.config, 32), 2);
  const out = d.apply(tf.zeros([2, 32, 32, 3]));
  assert.deepEqual(out.shape, [2, 2, 2, 1]);
  out.dispose();
  assert.throws(() => d.apply(tf.zeros([1, 16, 16, 3])), /too small for nLayers=3/);
  const none = new PatchDiscriminator({ ndf: 8, nLayers: 1, norm: 'none' }, 1);
  assert.deepEqual(
    [...none.variables.keys()],
    ['main.0.weight', 'main.0.bias', 'main.2.weight', 'main.2.bias', 'main.5.weight', 'main.5.bias'],
  );
  d.dispose();
  none.dispose();
});

test('GAN and reconstruction losses match hand-computed values; adaptive weight clamps', () => {
  const real = tf.tensor([2, 0.5, -1]);
  const fake = tf.tensor([-2, 0, 0.5]);
  // hinge: 0.5 * (mean(relu(1 - r)) + mean(relu(1 + f))) = 0.5 * ((0 + 0.5 + 2)/3 + (0 + 1 + 1.5)/3)
  assert.ok(close(discriminatorLoss(real, fake, 'hinge').dataSync()[0], 0.5 * (2.5 / 3 + 2.5 / 3)));
  const sp = (v: number) => Math.log1p(Math.exp(v));
  const vanilla = 0.5 * ((sp(-2) + sp(-0.5) + sp(1)) / 3 + (sp(-2) + sp(0) + sp(0.5)) / 3);
  assert.ok(close(discriminatorLoss(real, fake, 'vanilla').dataSync()[0], vanilla));
  assert.ok(close(generatorLoss(fake).dataSync()[0], 0.5));
  const a = tf.tensor4d([0, 1, 0.5, 0.25], [1, 2, 2, 1]);
  const b = tf.tensor4d([1, 1, 0, 0.75], [1, 2, 2, 1]);
  assert.ok(close(reconstructionLoss(a, b, 'l1').dataSync()[0], 2 / 4));
  assert.ok(close(reconstructionLoss(a, b, 'l2').dataSync()[0], (1 + 0 + 0.25 + 0.25) / 4));
  assert.throws(() => reconstructionLoss(a, b, 'l3' as 'l1'), /'l1' or 'l2'/);
  assert.equal(adaptiveWeight(2, 1 - 1e-4, 0.5), 1);
  assert.equal(adaptiveWeight(1e9, 0, 1), 1e4);
  tf.dispose([real, fake, a, b]);
});

test('codebook usage: perplexity, usage window, dead codes; restartCodes replaces exactly the given rows', async () => {
  const u = new CodebookUsage(4, 2); // tracking starts at step 2
  const p = u.record([0, 0, 1, 1], 5); // two codes equally often: perplexity 2
  assert.ok(close(p, 2));
  assert.ok(close(u.record([3, 3, 3, 3], 5), 1));
  assert.equal(u.usage(5, 1), 0.75);
  assert.equal(u.usage(6, 1), 0);
  assert.deepEqual(u.dead(5, 4), []);
  assert.deepEqual(u.dead(6, 4), [2]);
  assert.deepEqual(u.dead(9, 4), [0, 1, 2, 3]);

  const codebook = tf.variable(
    tf.tensor2d([
      [0, 0],
      [1, 1],
      [2, 2],
      [3, 3],
    ]),
  );
  const latents = tf.tensor2d([
    [10, 11],
    [20, 21],
    [30, 31],
  ]);
  const picks = await restartCodes(codebook, latents, [1, 3], 9, 4);
  const rows = codebook.arraySync();
  const lat = latents.arraySync();
  assert.deepEqual(rows[0], [0, 0]);
  assert.deepEqual(rows[2], [2, 2]);
  assert.deepEqual(rows[1], lat[picks[0]]);
  assert.deepEqual(rows[3], lat[picks[1]]);
  const again = tf.variable(
    tf.tensor2d([
      [0, 0],
      [1, 1],
      [2, 2],
      [3, 3],
    ]),
  );
  assert.deepEqual(await restartCodes(again, latents, [1, 3], 9, 4), picks, 'same seed and step: same picks');
  tf.dispose([codebook, latents, again]);
});

test('perceptual loss on a random torchvision-layout VGG16: taps, zero on identical inputs, formula, gradient', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-vgg-'));
  try {
    const tensors: Record<string, tf.Tensor> = {};
    let cin = 3;
    VGG16_CONV_INDICES.forEach((idx, k) => {
      const cout = VGG16_CHANNELS[k];
      tensors[`features.${idx}.weight`] = tf.randomNormal(
        [cout, cin, 3, 3],
        0,
        Math.sqrt(2 / (9 * cin)),
        'float32',
        k + 1,
      );
      tensors[`features.${idx}.bias`] = tf.randomUniform([cout], -0.05, 0.05, 'float32', k + 100);
      cin = cout;
    });
    const file = path.join(dir, 'vgg16.safetensors');
    await saveSafetensors(file, tensors);
    const vgg = await VggPerceptual.fromSafetensors(file);
    const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const y = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    const fx = vgg.features(x);
    assert.deepEqual(
      fx.map((f) => f.shape),
      [
        [2, 16, 16, 64],
        [2, 8, 8, 128],
        [2, 4, 4, 256],
        [2, 2, 2, 512],
        [2, 1, 1, 512],
      ],
    );
    assert.ok(vgg.loss(x, x).dataSync()[0] < 1e-9);
    // Independent evaluation of the formula from the tap features, in plain JS.
    const fy = vgg.features(y);
    let total = 0;
    fx.forEach((a, i) => {
      const [b, h, w, c] = a.shape;
      const av = a.dataSync();
      const bv = fy[i].dataSync();
      let sum = 0;
      for (let p = 0; p < b * h * w; p++) {
        let na = 0;
        let nb = 0;
        for (let k = 0; k < c; k++) {
          na += av[p * c + k] ** 2;
          nb += bv[p * c + k] ** 2;
        }
        na = Math.sqrt(na) + 1e-10;
        nb = Math.sqrt(nb) + 1e-10;
        for (let k = 0; k < c; k++) sum += (av[p * c + k] / na - bv[p * c + k] / nb) ** 2;
      }
      total += sum / (b * h * w);
    });
    const got = vgg.loss(x, y).dataSync()[0];
    assert.ok(got > 0.01 && close(got, total / 5, 1e-3), `${got} vs ${total / 5}`);
    const g = tf.grad((a: tf.Tensor) => vgg.loss(a as tf.Tensor4D, y))(x);
    const gv = g.dataSync();
    assert.ok(gv.every(Number.isFinite) && gv.some((v) => v !== 0));
    tf.dispose([...fx, ...fy, x, y, g]);
    vgg.dispose();
    // A file that is not VGG16.
    delete tensors['features.28.weight'];
    await saveSafetensors(path.join(dir, 'bad.safetensors'), tensors);
    await assert.rejects(
      VggPerceptual.fromSafetensors(path.join(dir, 'bad.safetensors')),
      /missing features\.28\.weight/,
    );
    tf.dispose(Object.values(tensors));
    assert.throws(() => vgg.features(tf.zeros([1, 8, 8, 3]) as tf.Tensor4D), /at least 16x16/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('adaptive weight and the combined gradient match a direct computation (and finite differences), with 32 and with 4 GroupNorm groups', async () => {
  // The trainer takes the last conv's input from the decoder (its norm_out tap), so the group count must reach it.
  for (const groups of [{ hiddenChannels: 32 }, { hiddenChannels: 16, normNumGroups: 4 }]) {
    const vq = VQGAN.create(
      {
        resolution: 8,
        ...groups,
        channelMult: [1, 2],
        numResBlocks: 1,
        zChannels: 8,
        quantizedEmbedDim: 8,
        numEmbeddings: 16,
      },
      3,
    );
    const trainer = new VqganTrainer(vq, { seed: 1, gan: { config: { ndf: 8, nLayers: 1 }, weight: 0.8, start: 0 } });
    const disc = trainer.discriminator!;
    const x = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
    const W = vq.param('decoder.conv_out.weight');
    const nllOf = () => reconstructionLoss(x, vq.forward(x).reconstruction, 'l1');
    const gOf = () => generatorLoss(disc.apply(vq.forward(x).reconstruction));
    const gradW = (f: () => tf.Scalar) =>
      tf.tidy(() => {
        const r = tf.variableGrads(f, [W]);
        return r.grads[W.name].clone();
      });
    const gn = gradW(nllOf);
    const gg = gradW(gOf);
    const direct = adaptiveWeight(tf.norm(gn).dataSync()[0], tf.norm(gg).dataSync()[0], 0.8);

    // Finite-difference check of one entry of the direct nll gradient (validates the reference itself).
    const idx = [1, 2, 5, 0];
    const eps = 1e-2;
    const shifted = (delta: number) =>
      tf.tidy(() => {
        const orig = W.clone();
        const bump = tf.buffer(W.shape, 'float32');
        bump.set(delta, ...idx);
        W.assign(orig.add(bump.toTensor()));
        const v = nllOf().dataSync()[0];
        W.assign(orig);
        return v;
      });
    const fd = (shifted(eps) - shifted(-eps)) / (2 * eps);
    const analytic = gn.bufferSync().get(...idx);
    assert.ok(Math.abs(fd - analytic) < 2e-3, `finite difference ${fd} vs analytic ${analytic}`);

    const r = await trainer.microGradients(x, true);
    assert.ok(close(r.dWeight!, direct, 2e-3), `trainer d_weight ${r.dWeight} vs direct ${direct}`);
    // The VQGAN gradient equals that of nll + d_weight * g + codebook loss, computed directly.
    const vars = [...vq.namedVariables()];
    const want = tf.variableGrads(
      () => {
        const o = vq.forward(x);
        return tf.addN([
          reconstructionLoss(x, o.reconstruction, 'l1'),
          tf.mul(generatorLoss(disc.apply(o.reconstruction)), r.dWeight!),
          o.codebookLoss,
        ]) as tf.Scalar;
      },
      vars.map(([, v]) => v),
    );
    for (const [name, v] of vars) {
      const a = r.grads.get(name)!.dataSync();
      const b = want.grads[v.name].dataSync();
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(b[i]));
      }
      assert.ok(diff <= 1e-4 + 1e-3 * scale, `${name}: max diff ${diff} (scale ${scale})`);
    }
    tf.dispose([gn, gg, x, r.xrec!, ...r.grads.values(), ...Object.values(want.grads), want.value]);
    trainer.dispose();
    vq.dispose();
  }
});
