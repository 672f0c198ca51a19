import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend.ts';
import { loadSafetensors, type TensorData } from '../../src/models/safetensors.ts';
import { DEFAULT_VQGAN_CONFIG, VQGAN, nchwToNhwc, nhwcToNchw, vqganParamSpecs } from '../../src/models/vqgan/index.ts';
import { configFromJson, configToJson, vqganConfig } from '../../src/models/vqgan/config.ts';
import { groupNorm } from '../../src/models/vqgan/layers.ts';
import { fixturePath } from '../helpers/fixtures.ts';

const fixtures = fixturePath('open-muse');
const fixtureSource = {
  config: path.join(fixtures, 'vqgan_config.json'),
  weights: path.join(fixtures, 'vqgan_weights.safetensors'),
};

/** The fixture README's criterion: |a - b| <= 1e-4 + 1e-4 |b| elementwise. */
function assertClose(name: string, got: ArrayLike<number>, expected: TensorData) {
  const e = expected.data;
  assert.equal(got.length, e.length, `${name}: size`);
  let worst = 0;
  for (let i = 0; i < e.length; i++) {
    const excess = Math.abs(got[i] - e[i]) - (1e-4 + 1e-4 * Math.abs(e[i]));
    worst = Math.max(worst, excess);
    if (excess > 0) assert.fail(`${name}[${i}]: ${got[i]} vs ${e[i]}`);
  }
}

const nchwData = (t: tf.Tensor4D) => tf.tidy(() => nhwcToNchw(t).dataSync());

test('matches the open-muse MaskGitVQGAN fixture: exact tokens, latents, decoded pixels, loss', async () => {
  await initBackend('wasm', { quiet: true });
  const model = await VQGAN.fromSafetensors(fixtureSource);
  const expected = await loadSafetensors(path.join(fixtures, 'vqgan_expected.safetensors'));
  const input = expected.pixel_values;
  const pixels = tf.tidy(() =>
    nchwToNhwc(tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number])),
  );
  try {
    assert.equal(model.numParams(), 611443);
    assert.equal(model.tokensPerImage, 64);

    const taps: Record<string, Float32Array> = {};
    const latents = model.encoder(pixels, {
      tap: (name, t) => (taps[name] = nchwData(t as tf.Tensor4D) as Float32Array),
    });
    for (const name of ['encoder.down.1', 'encoder.down.2', 'encoder.down.3', 'encoder.mid.0', 'encoder.norm_out']) {
      assertClose(name, taps[name], expected[`debug.${name}`]);
    }
    assertClose('encoder_latents', nchwData(latents), expected.encoder_latents);

    const { quantized, ids, loss } = model.quantize(latents, { returnLoss: true });
    assert.deepEqual([...ids.dataSync()], [...expected.token_indices.data]);
    assertClose('quantized_states', nchwData(quantized), expected.quantized_states);
    assert.ok(
      Math.abs(loss!.dataSync()[0] - expected.codebook_loss.data[0]) <= 1e-5,
      `codebook_loss ${loss!.dataSync()[0]}`,
    );
    const distances = model.distances(latents.reshape([128, 16]) as tf.Tensor2D);
    assertClose('quantizer_distances', distances.dataSync(), expected.quantizer_distances);

    // The public API: encode -> ids, decodeCode(ids) -> image.
    const encoded = model.encode(pixels);
    assert.deepEqual(encoded.shape, [2, 64]);
    assert.equal(encoded.dtype, 'int32');
    assert.deepEqual([...encoded.dataSync()], [...expected.token_indices.data]);
    const dtaps: Record<string, Float32Array> = {};
    const decoded = tf.tidy(() =>
      model.decoder(model.codebookEntries(encoded), {
        tap: (name, t) => (dtaps[name] = nchwData(t as tf.Tensor4D) as Float32Array),
      }),
    );
    for (const name of ['decoder.conv_in', 'decoder.mid.0', 'decoder.up.3'])
      assertClose(name, dtaps[name], expected[`debug.${name}`]);
    const image = model.decodeCode(encoded);
    assert.deepEqual(image.shape, [2, 64, 64, 3]);
    assertClose('decoded_from_tokens', nchwData(image), expected.decoded_from_tokens);
    assertClose('decoder(...)', nchwData(decoded), expected.decoded_from_tokens);
    tf.dispose([latents, quantized, ids, loss!, distances, encoded, decoded, image]);
  } finally {
    pixels.dispose();
    model.dispose();
  }
});

test('save writes open-muse names and layouts that load back unchanged', async () => {
  await initBackend('wasm', { quiet: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-vqgan-'));
  const model = await VQGAN.fromSafetensors(fixtureSource);
  try {
    await model.save(dir);
    const saved = await loadSafetensors(path.join(dir, 'model.safetensors'));
    const original = await loadSafetensors(fixtureSource.weights);
    assert.deepEqual(Object.keys(saved).sort(), Object.keys(original).sort());
    for (const [name, t] of Object.entries(original)) {
      assert.deepEqual(saved[name].shape, t.shape, name);
      assert.deepEqual(saved[name].data, t.data, name);
    }
    const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8'));
    assert.equal(config._class_name, 'MaskGitVQGAN');
    assert.deepEqual(config.channel_mult, [1, 1, 2, 2]);
    const again = await VQGAN.fromSafetensors(dir);
    assert.deepEqual(again.config, model.config);
    again.dispose();
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('loading refuses a checkpoint that does not match the config', async () => {
  const json = JSON.parse(await readFile(fixtureSource.config, 'utf8'));
  await assert.rejects(
    VQGAN.fromSafetensors({ config: { ...json, num_res_blocks: 2 }, weights: fixtureSource.weights }),
    /missing: encoder\.down\.0\.block\.1/,
  );
  await assert.rejects(
    VQGAN.fromSafetensors({
      config: { ...json, z_channels: 8, quantized_embed_dim: 8 },
      weights: fixtureSource.weights,
    }),
    /has shape/,
  );
});

test('default config is the reference f16 tokenizer; small configs build and round-trip shapes', async () => {
  await initBackend('wasm', { quiet: true });
  const specs = new Map(
    vqganParamSpecs({ ...DEFAULT_VQGAN_CONFIG, channelMult: [...DEFAULT_VQGAN_CONFIG.channelMult] }).map((s) => [
      s.name,
      s.torchShape,
    ]),
  );
  assert.deepEqual(specs.get('encoder.conv_in.weight'), [128, 3, 3, 3]);
  assert.deepEqual(specs.get('encoder.down.4.block.1.conv2.weight'), [512, 512, 3, 3]);
  assert.deepEqual(specs.get('encoder.conv_out.weight'), [256, 512, 1, 1]);
  assert.deepEqual(specs.get('quantize.embedding.weight'), [1024, 256]);
  assert.deepEqual(specs.get('decoder.up.4.upsample_conv.weight'), [512, 512, 3, 3]);
  assert.ok(!specs.has('decoder.up.0.upsample_conv.weight'));
  assert.ok(!specs.has('encoder.conv_in.bias'));

  const small = VQGAN.create(
    {
      resolution: 32,
      hiddenChannels: 32,
      channelMult: [1, 2],
      numResBlocks: 1,
      zChannels: 8,
      quantizedEmbedDim: 8,
      numEmbeddings: 16,
    },
    1,
  );
  const pixels = tf.randomUniform([3, 32, 32, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
  const ids = small.encode(pixels);
  assert.deepEqual(ids.shape, [3, 256]);
  const values = ids.dataSync();
  assert.ok(values.every((v) => v >= 0 && v < 16));
  const image = small.decodeCode(ids);
  assert.deepEqual(image.shape, [3, 32, 32, 3]);
  assert.throws(() => small.encoder(tf.zeros([1, 32, 32, 4]) as tf.Tensor4D), /3 channels/);
  // A batch that cannot fit the 4 GiB wasm heap is refused up front, with what to lower (nothing is allocated).
  const huge = { shape: [4096, 512, 512, 3] } as unknown as tf.Tensor4D;
  assert.throws(() => small.encode(huge), /4096 images at 512x512.*lower the batch size \(about \d+ images fit\)/);
  tf.dispose([pixels, ids, image]);
  small.dispose();
});

test('norm_num_groups: GroupNorm over that many groups (as torch.nn.GroupNorm), saved only when not 32, validated', async () => {
  await initBackend('wasm', { quiet: true });
  // torch.nn.GroupNorm(4, 8) by hand: per (sample, group) mean and biased variance over H, W and the group's 2 channels.
  const [b, h, w, c, groups] = [2, 3, 3, 8, 4];
  const x = tf.randomNormal([b, h, w, c], 0.5, 2, 'float32', 3) as tf.Tensor4D;
  const gamma = tf.randomNormal([c], 1, 0.3, 'float32', 4);
  const beta = tf.randomNormal([c], 0, 0.3, 'float32', 5);
  const xv = x.dataSync(),
    gv = gamma.dataSync(),
    bv = beta.dataSync();
  const want = new Float32Array(xv.length);
  const per = c / groups;
  for (let n = 0; n < b; n++)
    for (let g = 0; g < groups; g++) {
      const idx: number[] = [];
      for (let p = 0; p < h * w; p++) for (let k = 0; k < per; k++) idx.push((n * h * w + p) * c + g * per + k);
      const mean = idx.reduce((s, i) => s + xv[i], 0) / idx.length;
      const variance = idx.reduce((s, i) => s + (xv[i] - mean) ** 2, 0) / idx.length;
      for (const i of idx) want[i] = ((xv[i] - mean) / Math.sqrt(variance + 1e-6)) * gv[i % c] + bv[i % c];
    }
  const got = groupNorm(x, gamma, beta, groups).dataSync();
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) < 1e-4, `element ${i}: ${got[i]} vs ${want[i]}`);

  // A model with 16 channels and 4 groups builds and runs; its config.json says so; the default (32) is not written.
  const cfg = vqganConfig({
    resolution: 16,
    hiddenChannels: 16,
    channelMult: [1, 2],
    numResBlocks: 1,
    zChannels: 8,
    quantizedEmbedDim: 8,
    numEmbeddings: 16,
    normNumGroups: 4,
  });
  assert.equal(configToJson(cfg).norm_num_groups, 4);
  assert.equal(configFromJson(configToJson(cfg)).normNumGroups, 4);
  assert.ok(!('norm_num_groups' in configToJson(DEFAULT_VQGAN_CONFIG)));
  const small = VQGAN.create(cfg, 1);
  const ids = small.encode(tf.randomUniform([1, 16, 16, 3], 0, 1, 'float32', 2) as tf.Tensor4D);
  assert.deepEqual(ids.shape, [1, 64]);
  // GroupNorm(4) differs from GroupNorm(1) on the same weights: the setting reaches the encoder and the decoder.
  const one = VQGAN.create({ ...cfg, normNumGroups: 1 }, 1);
  const px = tf.randomUniform([1, 16, 16, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const d = tf
    .abs(tf.sub(small.encoder(px), one.encoder(px)))
    .max()
    .dataSync()[0];
  assert.ok(d > 1e-3, `encoder outputs differ by only ${d}`);
  const z = tf.randomNormal([1, 8, 8, 8], 0, 1, 'float32', 8) as tf.Tensor4D;
  const dd = tf
    .abs(tf.sub(small.decoder(z), one.decoder(z)))
    .max()
    .dataSync()[0];
  assert.ok(dd > 1e-3, `decoder outputs differ by only ${dd}`);
  assert.throws(
    () => vqganConfig({ hiddenChannels: 16, normNumGroups: 32 }),
    /hidden_channels\*1 is not a multiple of norm_num_groups 32/,
  );
  assert.throws(() => vqganConfig({ normNumGroups: 0 }), /norm_num_groups must be a positive integer/);
  tf.dispose([x, gamma, beta, ids, px, z]);
  small.dispose();
  one.dispose();
});

test('straight-through quantization: gradients reach the encoder latents and the codebook', async () => {
  await initBackend('wasm', { quiet: true });
  const model = VQGAN.create(
    {
      resolution: 16,
      hiddenChannels: 32,
      channelMult: [1, 2],
      numResBlocks: 1,
      zChannels: 4,
      quantizedEmbedDim: 4,
      numEmbeddings: 8,
    },
    3,
  );
  const latents = tf.randomNormal([1, 2, 2, 4], 0, 0.01, 'float32', 4) as tf.Tensor4D;
  const weights = tf.randomNormal([1, 2, 2, 4], 0, 1, 'float32', 5);
  const gLatents = tf.grad((z: tf.Tensor) =>
    model
      .quantize(z as tf.Tensor4D, { returnLoss: true })
      .quantized.mul(weights)
      .sum(),
  )(latents);
  assert.deepEqual([...gLatents.dataSync()], [...weights.dataSync()]);
  const codebook = model.param('quantize.embedding.weight');
  const { grads } = tf.variableGrads(() => model.quantize(latents, { returnLoss: true }).loss!, [codebook]);
  const g = grads[codebook.name].abs().sum().dataSync()[0];
  assert.ok(g > 0, 'the codebook term must train the codebook');
  tf.dispose([latents, weights, gLatents, ...Object.values(grads)]);
  model.dispose();
});

test('reconstruction-loss gradients on wasm equal the cpu backend; an Adam step runs on wasm', async () => {
  // Small, because the cpu backend's conv filter gradient is a slow direct loop.
  const config = {
    resolution: 8,
    hiddenChannels: 32,
    channelMult: [1, 2],
    numResBlocks: 1,
    zChannels: 8,
    quantizedEmbedDim: 8,
    numEmbeddings: 16,
  };
  const gradsOn = async (backend: 'cpu' | 'wasm') => {
    await initBackend(backend, { quiet: true });
    const model = VQGAN.create(config, 7);
    const pixels = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 8) as tf.Tensor4D;
    const vars = model.trainableVariables();
    const { value, grads } = tf.variableGrads(() => {
      const { reconstruction, codebookLoss } = model.forward(pixels);
      return tf.losses.meanSquaredError(pixels, reconstruction).add(codebookLoss) as tf.Scalar;
    }, vars);
    const out = new Map<string, Float32Array>();
    for (const [name, v] of model.namedVariables()) out.set(name, grads[v.name].dataSync() as Float32Array);
    out.set('loss', value.dataSync() as Float32Array);
    tf.dispose([pixels, value, ...Object.values(grads)]);
    model.dispose();
    return out;
  };
  const cpu = await gradsOn('cpu');
  const wasm = await gradsOn('wasm');
  assert.ok(cpu.size > 40);
  for (const [name, ref] of cpu) {
    const got = wasm.get(name)!;
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < ref.length; i++) {
      scale = Math.max(scale, Math.abs(ref[i]));
      diff = Math.max(diff, Math.abs(ref[i] - got[i]));
    }
    assert.ok(scale > 0, `${name}: zero gradient`);
    assert.ok(diff <= 1e-4 * scale, `${name}: max |wasm - cpu| ${diff} vs scale ${scale}`);
  }

  await initBackend('wasm', { quiet: true });
  const model = VQGAN.create(config, 7);
  const pixels = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 8) as tf.Tensor4D;
  const optimizer = tf.train.adam(1e-3);
  const lossFn = () =>
    tf.tidy(() => {
      const { reconstruction, codebookLoss } = model.forward(pixels, { training: true });
      return tf.losses.meanSquaredError(pixels, reconstruction).add(codebookLoss) as tf.Scalar;
    });
  const before = lossFn().dataSync()[0];
  for (let i = 0; i < 3; i++) optimizer.minimize(lossFn, false, model.trainableVariables());
  const after = lossFn().dataSync()[0];
  assert.ok(after < before, `loss ${before} -> ${after}`);
  optimizer.dispose();
  pixels.dispose();
  model.dispose();
});
