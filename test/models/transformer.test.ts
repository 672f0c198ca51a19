// MaskGitTransformer parity with open-muse (fixtures/open-muse/transformer_{rms,ln}_*): logits, debug
// activations, losses and the gradient of every parameter; plus save/load, class token and AdaLN options.
import { uvitConfig, uvitConfigJson } from '../../src/models/uvit/index.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { MaskGitTransformer } from '../../src/models/transformer/model.ts';
import {
  EXTENDED_CLASS,
  REFERENCE_CLASS,
  transformerConfig,
  transformerConfigJson,
} from '../../src/models/transformer/config.ts';
import { maskedCrossEntropy } from '../../src/models/transformer/loss.ts';
import { loadSafetensors, toTensor } from '../../src/models/safetensors.ts';
import { onBackend } from '../helpers/backend.ts';
import { fixturePath } from '../helpers/fixtures.ts';

const FIX = fixturePath('open-muse');

await tf.setBackend('cpu');

async function fixture(name: string): Promise<Record<string, tf.Tensor>> {
  const raw = await loadSafetensors(path.join(FIX, name));
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, toTensor(v)]));
}

/** max |a − b| and the elementwise bound |a − b| ≤ atol + rtol·|b|. */
function compare(a: tf.Tensor, b: tf.Tensor, atol: number, rtol: number): { maxAbs: number; ok: boolean } {
  assert.deepEqual(a.shape, b.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let maxAbs = 0;
  let ok = true;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    if (!(d <= atol + rtol * Math.abs(y[i]))) ok = false;
    if (!(d <= maxAbs)) maxAbs = d;
  }
  return { maxAbs, ok };
}

function maxAbsOf(t: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]);
}

for (const [variant, backend] of [
  ['rms', 'cpu'],
  ['ln', 'cpu'],
  ['rms', 'wasm'],
  ['ln', 'wasm'],
] as const) {
  test(`transformer_${variant} on ${backend}: logits, debug activations and losses match open-muse`, () =>
    onBackend(backend, async () => {
      const model = await MaskGitTransformer.fromSafetensors(
        path.join(FIX, `transformer_${variant}_weights.safetensors`),
        {
          config: path.join(FIX, `transformer_${variant}_config.json`),
        },
      );
      const ex = await fixture(`transformer_${variant}_expected.safetensors`);
      assert.equal(model.config.mask_token_id, variant === 'rms' ? 135 : 128);
      assert.equal(model.parameterCount(), variant === 'rms' ? 181248 : 191936);

      const debug: Record<string, tf.Tensor> = {};
      const logits = model.forward(ex.input_ids, ex.encoder_hidden_states, undefined, {
        capture: (name, t) => {
          debug[name] = tf.keep(t);
        },
      });
      const debugNames = Object.keys(ex).filter((k) => k.startsWith('debug.'));
      assert.ok(debugNames.length >= 4);
      for (const name of debugNames) {
        const got = debug[name.slice('debug.'.length)];
        assert.ok(got, `no activation captured for ${name}`);
        const r = compare(got, ex[name], 1e-4, 1e-4);
        assert.ok(r.ok, `${name}: max |Δ| ${r.maxAbs}`);
      }
      const r = compare(logits, ex.logits, 1e-4, 1e-4);
      assert.ok(r.ok, `logits: max |Δ| ${r.maxAbs}`);
      console.log(`transformer_${variant} on ${backend}: logits max|Δ| = ${r.maxAbs.toExponential(2)}`);

      const uncond = model.forward(ex.input_ids, tf.zerosLike(ex.encoder_hidden_states));
      const ru = compare(uncond, ex.logits_uncond, 1e-4, 1e-4);
      assert.ok(ru.ok, `logits_uncond: max |Δ| ${ru.maxAbs}`);

      for (const [eps, key] of [
        [0, 'loss'],
        [0.1, 'loss_label_smoothing_0.1'],
      ] as const) {
        const { loss } = model.forwardWithLoss(ex.input_ids, ex.labels, ex.encoder_hidden_states, undefined, {
          labelSmoothing: eps,
        });
        const want = ex[key].dataSync()[0];
        const got = loss.dataSync()[0];
        assert.ok(Math.abs(got - want) <= 1e-5, `${key}: ${got} vs ${want}`);
        console.log(`transformer_${variant} on ${backend}: ${key} ${got} (reference ${want})`);
      }
      model.dispose();
    }));

  test(`transformer_${variant} on ${backend}: gradients of every parameter match open-muse`, () =>
    onBackend(backend, async () => {
      const model = await MaskGitTransformer.fromSafetensors(
        path.join(FIX, `transformer_${variant}_weights.safetensors`),
        {
          config: path.join(FIX, `transformer_${variant}_config.json`),
        },
      );
      const ex = await fixture(`transformer_${variant}_expected.safetensors`);
      const expected = await fixture(`transformer_${variant}_grads.safetensors`);
      const { loss, grads } = model.lossAndGrads(ex.input_ids, ex.labels, ex.encoder_hidden_states, undefined, {
        labelSmoothing: 0.1,
        training: true,
      });
      assert.ok(Math.abs(loss.dataSync()[0] - ex['loss_label_smoothing_0.1'].dataSync()[0]) <= 1e-5);
      assert.equal(grads.size, Object.keys(expected).length);
      let worst = 0;
      for (const [name, g] of grads) {
        const want = expected[`grad.${name}`];
        assert.ok(want, `no reference gradient for ${name}`);
        const scale = maxAbsOf(want);
        const { maxAbs } = compare(g, want, Infinity, 0);
        assert.ok(maxAbs <= 1e-4 * scale, `${name}: max |Δ| ${maxAbs} vs tensor max ${scale}`);
        worst = Math.max(worst, maxAbs / scale);
      }
      console.log(`transformer_${variant} on ${backend}: worst gradient max|Δ|/max|g| = ${worst.toExponential(2)}`);
      model.dispose();
    }));
}

/** A small random text-conditioned model (our seeded init) for the option tests. */
function smallModel(extra: Record<string, unknown> = {}, seed = 1): MaskGitTransformer {
  return new MaskGitTransformer(
    {
      vocab_size: 33,
      codebook_size: 32,
      num_vq_tokens: 16,
      max_position_embeddings: 17,
      hidden_size: 32,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: 64,
      add_cross_attention: true,
      encoder_hidden_size: 24,
      hidden_dropout: 0,
      attention_dropout: 0,
      initializer_range: 0.2,
      ...extra,
    },
    { seed },
  );
}

function randomInputs(b: number, t: number, s: number, e: number, vocab: number, seed = 3) {
  const ids = tf.tensor2d(
    Array.from({ length: b * t }, (_, i) => (i * 7 + seed) % vocab),
    [b, t],
    'int32',
  );
  const ehs = tf.randomNormal([b, s, e], 0, 1, 'float32', seed);
  return { ids, ehs };
}

test('save() writes reference names and config; fromSafetensors(dir) reproduces the logits', async () => {
  const model = await MaskGitTransformer.fromSafetensors(path.join(FIX, 'transformer_ln_weights.safetensors'), {
    config: path.join(FIX, 'transformer_ln_config.json'),
  });
  const ex = await fixture('transformer_ln_expected.safetensors');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'muse-transformer-'));
  try {
    await model.save(dir);
    const saved = await loadSafetensors(path.join(dir, 'model.safetensors'));
    const reference = await loadSafetensors(path.join(FIX, 'transformer_ln_weights.safetensors'));
    assert.deepEqual(Object.keys(saved).sort(), Object.keys(reference).sort());
    const cfg = JSON.parse(await fsp.readFile(path.join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg._class_name, 'MaskGitTransformer');
    assert.equal(cfg.mask_token_id, 128);
    const again = await MaskGitTransformer.fromSafetensors(dir);
    const a = model.forward(ex.input_ids, ex.encoder_hidden_states);
    const b = again.forward(ex.input_ids, ex.encoder_hidden_states);
    assert.equal(compare(a, b, 0, 0).maxAbs, 0);
    again.dispose();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test('fromSafetensors rejects a checkpoint whose names or shapes do not match the config', async () => {
  await assert.rejects(
    MaskGitTransformer.fromSafetensors(path.join(FIX, 'transformer_ln_weights.safetensors'), {
      config: path.join(FIX, 'transformer_rms_config.json'),
    }),
    /does not match|shape/,
  );
});

test('seeded init is deterministic and follows the reference initialiser', () => {
  const a = smallModel({}, 7);
  const b = smallModel({}, 7);
  const c = smallModel({}, 8);
  const w = (m: MaskGitTransformer) => m.variables.get('transformer_layers.0.attention.query.weight')!.dataSync();
  assert.deepEqual(Array.from(w(a)), Array.from(w(b)));
  assert.notDeepEqual(Array.from(w(a)), Array.from(w(c)));
  const values = Array.from(a.variables.get('embed.word_embeddings.weight')!.dataSync());
  const mean = values.reduce((x, y) => x + y, 0) / values.length;
  const std = Math.sqrt(values.reduce((x, y) => x + (y - mean) ** 2, 0) / values.length);
  assert.ok(Math.abs(std - 0.2) < 0.02, `std ${std}`);
  assert.deepEqual(Array.from(a.variables.get('encoder_layer_norm.weight')!.dataSync()), new Array(32).fill(1));
  for (const m of [a, b, c]) m.dispose();
});

test('masked cross-entropy with label smoothing equals the formula computed by hand', () => {
  const logitsArr = [
    [1, 2, 0.5],
    [0.1, -1, 3],
    [2, 2, 2],
  ];
  const labels = [2, -100, 0];
  const eps = 0.2;
  let sum = 0;
  let n = 0;
  logitsArr.forEach((row, i) => {
    if (labels[i] === -100) return;
    const lse = Math.log(row.reduce((a, x) => a + Math.exp(x), 0));
    const nll = lse - row[labels[i]];
    const smooth = row.reduce((a, x) => a + (lse - x), 0) / row.length;
    sum += (1 - eps) * nll + eps * smooth;
    n++;
  });
  const got = maskedCrossEntropy(
    tf.tensor3d([logitsArr]),
    tf.tensor2d([labels], undefined, 'int32'),
    eps,
  ).dataSync()[0];
  assert.ok(Math.abs(got - sum / n) < 1e-6, `${got} vs ${sum / n}`);
});

test('encoder attention mask: padded text positions have no effect', () => {
  const model = smallModel();
  const { ids, ehs } = randomInputs(2, 16, 6, 24, 33);
  const mask = tf.tensor2d(
    [
      [1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1],
    ],
    undefined,
    'int32',
  );
  const masked = model.forward(ids, ehs, mask);
  // Changing the padded states must not change anything; dropping them must give the same logits.
  const noisy = tf.concat([tf.slice(ehs, [0, 0, 0], [2, 4, 24]), tf.mul(tf.slice(ehs, [0, 4, 0], [2, 2, 24]), 5)], 1);
  const maskedNoisy = model.forward(ids, noisy, mask);
  assert.ok(
    compare(tf.slice(masked, [0, 0, 0], [1, 16, 33]), tf.slice(maskedNoisy, [0, 0, 0], [1, 16, 33]), 1e-5, 0).ok,
  );
  const short = model.forward(tf.slice(ids, [0, 0], [1, 16]), tf.slice(ehs, [0, 0, 0], [1, 4, 24]));
  assert.ok(compare(tf.slice(masked, [0, 0, 0], [1, 16, 33]), short, 1e-5, 1e-5).ok);
  // The unpadded row does see its last two states.
  const unmasked = model.forward(ids, ehs);
  assert.ok(
    compare(tf.slice(masked, [1, 0, 0], [1, 16, 33]), tf.slice(unmasked, [1, 0, 0], [1, 16, 33]), 1e-5, 1e-5).ok,
  );
  assert.ok(
    compare(tf.slice(masked, [0, 0, 0], [1, 16, 33]), tf.slice(unmasked, [0, 0, 0], [1, 16, 33]), 1e-5, 0).maxAbs >
      1e-3,
  );
  model.dispose();
});

test('class conditioning: a prepended class token (codebook_size + id) changes the logits, shape kept', () => {
  // ImageNet stage: vocab = codebook + classes + mask, one more position for the class token.
  const model = smallModel({ vocab_size: 32 + 10 + 1, num_classes: 10, add_cross_attention: false });
  assert.equal(model.config.mask_token_id, 42);
  const ids = tf.fill([2, 16], 42, 'int32');
  const a = model.forward(ids, undefined, undefined, { classIds: tf.tensor1d([3, 3], 'int32') });
  const b = model.forward(ids, undefined, undefined, { classIds: tf.tensor1d([3, 4], 'int32') });
  assert.deepEqual(a.shape, [2, 16, 43]);
  const row = (t: tf.Tensor, i: number) => tf.slice(t, [i, 0, 0], [1, 16, 43]);
  assert.equal(compare(row(a, 0), row(a, 1), 0, 0).maxAbs, 0);
  assert.ok(compare(row(a, 1), row(b, 1), 0, 0).maxAbs > 1e-3);
  // Same as calling forward on the explicitly prepended ids and dropping position 0.
  const full = model.forward(model.prependClassToken(ids, tf.tensor1d([3, 4], 'int32')));
  assert.equal(compare(tf.slice(full, [0, 1, 0], [2, 16, 43]), b, 0, 0).maxAbs, 0);
  // Labels of the image positions only.
  const labels = tf.fill([2, 16], 5, 'int32');
  const { loss } = model.forwardWithLoss(ids, labels, undefined, undefined, { classIds: tf.tensor1d([3, 4], 'int32') });
  assert.ok(Number.isFinite(loss.dataSync()[0]));
  model.dispose();
});

test('AdaLN pooled-text conditioning: identity at init (zero mappers), changes outputs once trained, gradients flow', () => {
  const model = smallModel({ add_cond_embeds: true, cond_embed_dim: 12 });
  const names = model.params.names();
  for (const n of [
    'cond_embed.0.weight',
    'cond_embed.2.weight',
    'transformer_layers.1.self_attn_adaLN_modulation.mapper.weight',
    'transformer_layers.1.cross_attn_adaLN_modulation.mapper.weight',
    'transformer_layers.1.ffn.adaLN_modulation.mapper.weight',
  ]) {
    assert.ok(names.includes(n), n);
  }
  assert.deepEqual(model.variables.get('cond_embed.0.weight')!.shape, [32, 12]);
  assert.deepEqual(model.variables.get('transformer_layers.0.ffn.adaLN_modulation.mapper.weight')!.shape, [64, 32]);
  const { ids, ehs } = randomInputs(2, 16, 6, 24, 33);
  const pooled = tf.randomNormal([2, 12], 0, 1, 'float32', 9);
  const zeroCond = model.forward(ids, ehs, undefined, { condEmbeds: pooled });
  const otherCond = model.forward(ids, ehs, undefined, { condEmbeds: tf.mul(pooled, -2) });
  assert.equal(compare(zeroCond, otherCond, 0, 0).maxAbs, 0, 'zero-initialised mappers make conditioning the identity');
  assert.throws(() => model.forward(ids, ehs), /condEmbeds/);
  // Gradients reach the mappers even at zero.
  const labels = tf.tensor2d(
    Array.from({ length: 32 }, (_, i) => (i % 3 === 0 ? i % 32 : -100)),
    [2, 16],
    'int32',
  );
  const { grads } = model.lossAndGrads(ids, labels, ehs, undefined, { condEmbeds: pooled });
  assert.ok(maxAbsOf(grads.get('transformer_layers.0.ffn.adaLN_modulation.mapper.weight')!) > 0);
  // Non-zero mappers: the pooled vector now changes the logits.
  let rng = 1;
  for (const [name, v] of model.variables) {
    if (name.includes('adaLN_modulation')) v.assign(tf.randomNormal(v.shape, 0, 0.2, 'float32', rng++));
  }
  const a = model.forward(ids, ehs, undefined, { condEmbeds: pooled });
  const b = model.forward(ids, ehs, undefined, { condEmbeds: tf.mul(pooled, -2) });
  assert.deepEqual(a.shape, [2, 16, 33]);
  assert.ok(compare(a, b, 0, 0).maxAbs > 1e-3);
  model.dispose();
});

test('vanilla FFN option (ffn_type) drops wi_1', () => {
  const model = smallModel({ ffn_type: 'vanilla' });
  assert.ok(!model.params.names().some((n) => n.includes('wi_1')));
  const { ids, ehs } = randomInputs(1, 16, 6, 24, 33);
  assert.deepEqual(model.forward(ids, ehs).shape, [1, 16, 33]);
  model.dispose();
});

test('dropout applies only in training; forward and gradients leak no tensors', () => {
  const model = smallModel({ hidden_dropout: 0.5, attention_dropout: 0.5 });
  const { ids, ehs } = randomInputs(2, 16, 6, 24, 33);
  const labels = tf.tensor2d(
    Array.from({ length: 32 }, (_, i) => (i % 2 ? i % 32 : -100)),
    [2, 16],
    'int32',
  );
  const before = tf.memory().numTensors;
  const a = model.forward(ids, ehs);
  const b = model.forward(ids, ehs);
  const c = model.forward(ids, ehs, undefined, { training: true });
  assert.equal(compare(a, b, 0, 0).maxAbs, 0);
  assert.ok(compare(a, c, 0, 0).maxAbs > 1e-3);
  const { loss, grads } = model.lossAndGrads(ids, labels, ehs, undefined, { labelSmoothing: 0.1 });
  assert.equal(grads.size, model.params.names().length);
  tf.dispose([a, b, c, loss, ...grads.values()]);
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
});

test('config.json names the class that loads it; the loader refuses other classes by name, not by a shape error', async () => {
  const { loadTrainConfig } = await import('../../src/train/config/load.ts');
  const configsDir = path.resolve(import.meta.dirname, '../../configs');
  const classOf = (file: string) => {
    const cfg = loadTrainConfig({ file: path.join(configsDir, file), configsDir });
    const section = cfg.model.transformer as Record<string, unknown>;
    return cfg.model.architecture === 'uvit'
      ? uvitConfigJson(uvitConfig(section))._class_name
      : transformerConfigJson(transformerConfig(section))._class_name;
  };
  // open-muse's MaskGitTransformer builds GLU FFNs and no pooled-text AdaLN: these configs load in it ...
  for (const f of ['imagenet.yaml', 'cc12m-t5.yaml', 'tiny.yaml']) assert.equal(classOf(f), REFERENCE_CLASS, f);
  // ... base256's pooled-text AdaLN is not built by it (and no open-muse class builds it), so it is named as ours ...
  assert.equal(classOf('base256.yaml'), EXTENDED_CLASS);
  // ... and the U-ViT stages are open-muse's MaskGiTUViT (src/models/uvit/).
  for (const f of ['cc12m-clip.yaml', 'base512.yaml']) assert.equal(classOf(f), 'MaskGiTUViT_v2', f);

  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'muse-transformer-class-'));
  try {
    for (const [name, extra, cls] of [
      ['vanilla', { ffn_type: 'vanilla' }, EXTENDED_CLASS],
      ['adaln', { add_cond_embeds: true, cond_embed_dim: 8 }, EXTENDED_CLASS],
      ['glu', {}, REFERENCE_CLASS],
    ] as const) {
      const m = smallModel(extra);
      await m.save(path.join(dir, name));
      m.dispose();
      const json = JSON.parse(await fsp.readFile(path.join(dir, name, 'config.json'), 'utf8'));
      assert.equal(json._class_name, cls, name);
      (await MaskGitTransformer.fromSafetensors(path.join(dir, name))).dispose();
    }
    // The same weights under open-muse's U-ViT class name, or an unknown one: refused with the name and why.
    const file = path.join(dir, 'adaln', 'config.json');
    const json = JSON.parse(await fsp.readFile(file, 'utf8'));
    await fsp.writeFile(file, JSON.stringify({ ...json, _class_name: 'MaskGiTUViT' }));
    await assert.rejects(
      MaskGitTransformer.fromSafetensors(path.join(dir, 'adaln')),
      /adaln \(its config\.json\): _class_name "MaskGiTUViT" is not supported: that is open-muse's U-ViT .* This loader reads MaskGitTransformer \(open-muse\) and MaskGitTransformerExtended/,
    );
    await fsp.writeFile(file, JSON.stringify({ ...json, _class_name: 'UNet2DModel' }));
    await assert.rejects(
      MaskGitTransformer.fromSafetensors(path.join(dir, 'adaln')),
      /_class_name "UNet2DModel" is not supported\. This loader reads/,
    );
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
