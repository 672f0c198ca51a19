// MaskGiTUViT parity with open-muse's MaskGiTUViT_v2 (test/fixtures/uvit/, made by test/fixtures/make/uvit.py):
// logits, debug activations, losses and every parameter's gradient, on cpu and wasm; plus reference names of
// our own init, save/load, micro-conditions and input checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { MaskGiTUViT } from '../../src/models/uvit/index.ts';
import { loadSafetensors, toTensor } from '../../src/models/safetensors.ts';
import { onBackend, tensorflowSkip } from '../helpers/backend.ts';

const FIX = path.resolve(import.meta.dirname, '../fixtures/uvit');

await tf.setBackend('cpu');

async function fixture(name: string): Promise<Record<string, tf.Tensor>> {
  const raw = await loadSafetensors(path.join(FIX, name));
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, toTensor(v)]));
}

/** max |a − b| and whether |a − b| ≤ atol + rtol·|b| everywhere. */
async function compare(
  a: tf.Tensor,
  b: tf.Tensor,
  atol: number,
  rtol: number,
): Promise<{ maxAbs: number; ok: boolean }> {
  assert.deepEqual(a.shape, b.shape);
  const [x, y] = await Promise.all([a.data(), b.data()]);
  let maxAbs = 0;
  let ok = true;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    if (!(d <= atol + rtol * Math.abs(y[i]))) ok = false;
    if (!(d <= maxAbs)) maxAbs = d;
  }
  return { maxAbs, ok };
}

async function scalar(t: tf.Tensor): Promise<number> {
  return (await t.data())[0];
}

const load = (variant: string) =>
  MaskGiTUViT.fromSafetensors(path.join(FIX, `${variant}_weights.safetensors`), {
    config: path.join(FIX, `${variant}_config.json`),
  });

const PARAMS = { uvit_rms: 54288, uvit_ln: 66076 } as const;

const tfSkip = await tensorflowSkip();

for (const [variant, backend] of [
  ['uvit_rms', 'cpu'],
  ['uvit_ln', 'cpu'],
  ['uvit_rms', 'wasm'],
  ['uvit_ln', 'wasm'],
  ['uvit_rms', 'tensorflow'],
  ['uvit_ln', 'tensorflow'],
] as const) {
  const opts = { skip: backend === 'tensorflow' && tfSkip };
  test(`${variant} on ${backend}: logits, debug activations and losses match open-muse`, opts, () =>
    onBackend(backend, async () => {
      const model = await load(variant);
      const ex = await fixture(`${variant}_expected.safetensors`);
      assert.equal(model.parameterCount(), PARAMS[variant]);
      const debug: Record<string, tf.Tensor> = {};
      const opts = {
        condEmbeds: ex.cond_embeds,
        microConds: ex.micro_conds,
        capture: (name: string, t: tf.Tensor) => {
          debug[name] = tf.keep(t);
        },
      };
      const logits = model.forward(ex.input_ids, ex.encoder_hidden_states, undefined, opts);
      const debugNames = Object.keys(ex).filter((k) => k.startsWith('debug.'));
      assert.equal(debugNames.length, 4);
      for (const name of debugNames) {
        const got = debug[name.slice('debug.'.length)];
        assert.ok(got, `no activation captured for ${name}`);
        const r = await compare(got, ex[name], 1e-4, 1e-4);
        assert.ok(r.ok, `${name}: max |Δ| ${r.maxAbs}`);
      }
      const r = await compare(logits, ex.logits, 1e-4, 1e-4);
      assert.ok(r.ok, `logits: max |Δ| ${r.maxAbs}`);
      console.log(`${variant} on ${backend}: logits max|Δ| = ${r.maxAbs.toExponential(2)}`);
      for (const [eps, key] of [
        [0, 'loss'],
        [0.1, 'loss_label_smoothing_0.1'],
      ] as const) {
        const { logits: l, loss } = model.forwardWithLoss(
          ex.input_ids,
          ex.labels,
          ex.encoder_hidden_states,
          undefined,
          { ...opts, capture: undefined, labelSmoothing: eps },
        );
        const [got, want] = [await scalar(loss), await scalar(ex[key])];
        assert.ok(Math.abs(got - want) <= 1e-5, `${key}: ${got} vs ${want}`);
        tf.dispose([l, loss]);
      }
      tf.dispose([logits, ...Object.values(debug), ...Object.values(ex)]);
      model.dispose();
    }),
  );

  test(`${variant} on ${backend}: gradients of every parameter match open-muse`, opts, () =>
    onBackend(backend, async () => {
      const model = await load(variant);
      const ex = await fixture(`${variant}_expected.safetensors`);
      const expected = await fixture(`${variant}_grads.safetensors`);
      const { loss, grads } = model.lossAndGrads(ex.input_ids, ex.labels, ex.encoder_hidden_states, undefined, {
        condEmbeds: ex.cond_embeds,
        microConds: ex.micro_conds,
        labelSmoothing: 0.1,
        training: true,
      });
      assert.ok(Math.abs((await scalar(loss)) - (await scalar(ex['loss_label_smoothing_0.1']))) <= 1e-5);
      assert.deepEqual([...grads.keys()].sort(), Object.keys(expected).sort());
      let worst = 0;
      for (const [name, g] of grads) {
        const want = expected[name];
        const { maxAbs } = await compare(g, want, Infinity, 0);
        if (name.endsWith('.key.bias')) {
          // Adding a constant to every key shifts each query's scores equally: softmax ignores it, so the true
          // gradient is 0 and both sides hold rounding noise (~1e-10).
          assert.ok(maxAbs <= 1e-7 && (await scalar(tf.max(tf.abs(g)))) <= 1e-7, `${name}: max |Δ| ${maxAbs}`);
          continue;
        }
        const scale = await scalar(tf.max(tf.abs(want)));
        assert.ok(maxAbs <= 1e-4 * scale, `${name}: max |Δ| ${maxAbs} vs tensor max ${scale}`);
        worst = Math.max(worst, maxAbs / scale);
      }
      console.log(`${variant} on ${backend}: worst gradient max|Δ|/max|g| = ${worst.toExponential(2)}`);
      tf.dispose([loss, ...grads.values(), ...Object.values(ex), ...Object.values(expected)]);
      model.dispose();
    }),
  );
}

test('our seeded init creates exactly the reference tensor names and shapes', async () => {
  for (const variant of ['uvit_rms', 'uvit_ln']) {
    const config = JSON.parse(await fsp.readFile(path.join(FIX, `${variant}_config.json`), 'utf8'));
    const ours = new MaskGiTUViT(config, { seed: 3 });
    const reference = await loadSafetensors(path.join(FIX, `${variant}_weights.safetensors`));
    assert.deepEqual(ours.params.names().sort(), Object.keys(reference).sort());
    for (const [name, v] of ours.variables) assert.deepEqual(v.shape, reference[name].shape, name);
    // Reference init: AdaLN mappers and the output conv1 start at zero, conv2 is tied to the embeddings.
    assert.equal(
      await scalar(tf.max(tf.abs(ours.variables.get('transformer_layers.0.ffn.adaLN_modulation.mapper.weight')!))),
      0,
    );
    assert.equal(await scalar(tf.max(tf.abs(ours.variables.get('mlm_layer.conv1.weight')!))), 0);
    const emb = ours.variables.get('embed.embeddings.weight')!;
    const conv2 = ours.variables.get('mlm_layer.conv2.weight')!;
    const head = tf.slice(emb, [0, 0], [config.codebook_size, config.in_channels]);
    assert.equal((await compare(tf.reshape(conv2, head.shape), head, 0, 0)).maxAbs, 0);
    ours.dispose();
  }
});

test('save() writes the reference config and names; fromSafetensors(dir) reproduces the logits', async () => {
  const model = await load('uvit_ln');
  const ex = await fixture('uvit_ln_expected.safetensors');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'muse-uvit-'));
  try {
    await model.save(dir);
    const cfg = JSON.parse(await fsp.readFile(path.join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg._class_name, 'MaskGiTUViT_v2');
    assert.equal(cfg.force_down_up_sample, true);
    assert.equal(cfg.num_vq_tokens, 64);
    const again = await MaskGiTUViT.fromSafetensors(dir);
    const opts = { condEmbeds: ex.cond_embeds, microConds: ex.micro_conds };
    const a = model.forward(ex.input_ids, ex.encoder_hidden_states, undefined, opts);
    const b = again.forward(ex.input_ids, ex.encoder_hidden_states, undefined, opts);
    assert.equal((await compare(a, b, 0, 0)).maxAbs, 0);
    again.dispose();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test('micro-conditions change the logits; default_micro_conds stand in when none are given', async () => {
  const model = await load('uvit_rms');
  const ex = await fixture('uvit_rms_expected.safetensors');
  const run = (microConds?: tf.Tensor) =>
    model.forward(ex.input_ids, ex.encoder_hidden_states, undefined, { condEmbeds: ex.cond_embeds, microConds });
  const given = run(ex.micro_conds);
  const other = run(tf.add(ex.micro_conds, 1));
  assert.ok((await compare(given, other, 0, 0)).maxAbs > 1e-4);
  const defaults = tf.tile(tf.tensor2d([model.config.default_micro_conds]), [2, 1]);
  assert.equal((await compare(run(), run(defaults), 0, 0)).maxAbs, 0);
  model.dispose();
});

test('a diffusers UVit2DModel checkpoint (the published aMUSEd layout) loads and gives its logits', async () => {
  const model = await MaskGiTUViT.fromSafetensors(path.join(FIX, 'amused_diffusers_weights.safetensors'), {
    config: path.join(FIX, 'amused_diffusers_config.json'),
  });
  const ex = await fixture('amused_diffusers_expected.safetensors');
  assert.equal(model.config.num_vq_tokens, 64);
  assert.equal(model.config.force_down_up_sample, true);
  assert.equal(model.parameterCount(), 68272);
  const logits = model.forward(ex.input_ids, ex.encoder_hidden_states, undefined, {
    condEmbeds: ex.cond_embeds,
    microConds: ex.micro_conds,
  });
  const r = await compare(logits, ex.logits, 1e-4, 1e-4);
  assert.ok(r.ok, `logits: max |Δ| ${r.maxAbs}`);
  console.log(`amused_diffusers: logits max|Δ| = ${r.maxAbs.toExponential(2)}`);
  // Saved again, it is an open-muse MaskGiTUViT checkpoint.
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'muse-uvit-'));
  try {
    await model.save(dir);
    const names = Object.keys(await loadSafetensors(path.join(dir, 'model.safetensors')));
    assert.ok(
      names.includes('transformer_layers.0.ffn.wi_0.weight') && names.includes('down_blocks.0.downsample.1.weight'),
    );
    assert.ok(!names.some((n) => n.includes('ff.net') || n.startsWith('down_block.')));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test('bad inputs and configs are refused with the name of what is wrong', async () => {
  const model = await load('uvit_rms');
  const ex = await fixture('uvit_rms_expected.safetensors');
  assert.throws(() => model.forward(ex.input_ids, ex.encoder_hidden_states), /condEmbeds/);
  assert.throws(
    () => model.forward(ex.input_ids, undefined, undefined, { condEmbeds: ex.cond_embeds }),
    /encoderHiddenStates/,
  );
  assert.throws(
    () =>
      model.forward(tf.slice(ex.input_ids, [0, 0], [2, 9]), ex.encoder_hidden_states, undefined, {
        condEmbeds: ex.cond_embeds,
      }),
    /num_vq_tokens 16/,
  );
  assert.throws(
    () =>
      model.forward(ex.input_ids, ex.encoder_hidden_states, undefined, {
        condEmbeds: ex.cond_embeds,
        microConds: tf.zeros([2, 3]),
      }),
    /microConds/,
  );
  model.dispose();
  assert.throws(() => new MaskGiTUViT({ num_vq_tokens: 15 }), /not a square/);
  assert.throws(() => new MaskGiTUViT({ block_out_channels: [8, 16] }), /exactly one/);
  assert.throws(() => new MaskGiTUViT({ use_fused_mlp: true }), /use_fused_mlp/);
  await assert.rejects(
    MaskGiTUViT.fromSafetensors(path.join(FIX, 'uvit_ln_weights.safetensors'), {
      config: path.join(FIX, 'uvit_rms_config.json'),
    }),
    /does not match|shape/,
  );
});
