// T5 and CLIP text encoders against Hugging Face transformers (fixtures/t5-encoder, fixtures/clip-text),
// the built-in byt5-tiny encoder, and loadTextEncoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { T5Encoder, relativePositionBucket } from '../../src/models/text/t5.ts';
import { ClipTextEncoder } from '../../src/models/text/clip.ts';
import { loadSafetensors, saveSafetensors, toTensor } from '../../src/models/safetensors.ts';
import { loadTextEncoder } from '../../src/models/text/encoders.ts';
import { onBackend } from '../helpers/backend.ts';
import { fixturePath } from '../helpers/fixtures.ts';
import { captionWords, writeDemoTextEncoder } from '../../src/demo/text-encoder.ts';

const FIX = fixturePath();

await tf.setBackend('cpu');

async function fixture(file: string): Promise<Record<string, tf.Tensor>> {
  const raw = await loadSafetensors(path.join(FIX, file));
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, toTensor(v)]));
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

async function tempDir(): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'muse-text-'));
}

test('T5 relative position buckets follow HF (bidirectional, 32 buckets, max distance 128)', () => {
  const b = (r: number) => relativePositionBucket(r, 32, 128);
  // Exact region, then log-spaced; positive offsets use the upper half.
  assert.deepEqual([0, -1, -7, 1, 7].map(b), [0, 1, 7, 17, 23]);
  assert.deepEqual([-8, -11, -12, -16, -32, -64, -127, -128, -1000].map(b), [8, 8, 9, 10, 12, 14, 15, 15, 15]);
  assert.deepEqual([8, 16, 1000].map(b), [24, 26, 31]);
});

for (const backend of ['cpu', 'wasm'] as const) {
  test(`T5 v1.1 encoder matches HF T5EncoderModel on ${backend}, padded positions included`, () =>
    onBackend(backend, async () => {
      const model = await T5Encoder.fromSafetensors(path.join(FIX, 't5-encoder/weights.safetensors'));
      assert.equal(model.config.feed_forward_proj, 'gated-gelu');
      const ex = await fixture('t5-encoder/expected.safetensors');
      const { lastHiddenState } = model.forward(ex.input_ids, ex.attention_mask);
      const d = maxAbsDiff(lastHiddenState, ex.last_hidden_state);
      console.log(`t5-encoder on ${backend}: last_hidden_state max|Δ| = ${d.toExponential(2)}`);
      assert.ok(d <= 1e-4, `max |Δ| ${d}`);
      // Without the mask the padded rows differ: the mask is doing something.
      assert.ok(maxAbsDiff(model.forward(ex.input_ids).lastHiddenState, ex.last_hidden_state) > 1e-3);
      model.dispose();
    }));

  test(`CLIP text encoder matches HF CLIPTextModelWithProjection on ${backend} (last, penultimate, text_embeds)`, () =>
    onBackend(backend, async () => {
      const model = await ClipTextEncoder.fromSafetensors(path.join(FIX, 'clip-text/weights.safetensors'));
      const ex = await fixture('clip-text/expected.safetensors');
      const out = model.forward(ex.input_ids, ex.attention_mask);
      const diffs = {
        last_hidden_state: maxAbsDiff(out.lastHiddenState, ex.last_hidden_state),
        penultimate_hidden_state: maxAbsDiff(out.penultimateHiddenState, ex.penultimate_hidden_state),
        text_embeds: maxAbsDiff(out.textEmbeds!, ex.text_embeds),
      };
      console.log(`clip-text on ${backend}: max|Δ| ${JSON.stringify(diffs)}`);
      for (const [k, d] of Object.entries(diffs)) assert.ok(d <= 1e-4, `${k}: max |Δ| ${d}`);
      assert.deepEqual(out.pooled.shape, [3, 64]);
      model.dispose();
    }));
}

test('T5 loads `shared.weight` in place of `encoder.embed_tokens.weight`, skips decoder tensors, and saves/reloads', async () => {
  const dir = await tempDir();
  try {
    const raw = await loadSafetensors(path.join(FIX, 't5-encoder/weights.safetensors'));
    const renamed: Record<string, (typeof raw)[string]> = {};
    for (const [k, v] of Object.entries(raw)) renamed[k === 'encoder.embed_tokens.weight' ? 'shared.weight' : k] = v;
    renamed['decoder.final_layer_norm.weight'] = raw['encoder.final_layer_norm.weight'];
    await saveSafetensors(path.join(dir, 'model.safetensors'), renamed);
    await fsp.copyFile(path.join(FIX, 't5-encoder/config.json'), path.join(dir, 'config.json'));
    const model = await T5Encoder.fromSafetensors(dir);
    const ex = await fixture('t5-encoder/expected.safetensors');
    assert.ok(maxAbsDiff(model.forward(ex.input_ids, ex.attention_mask).lastHiddenState, ex.last_hidden_state) <= 1e-4);
    const out = path.join(dir, 'saved');
    await model.save(out);
    const again = await T5Encoder.fromSafetensors(out);
    assert.equal(
      maxAbsDiff(
        again.forward(ex.input_ids, ex.attention_mask).lastHiddenState,
        model.forward(ex.input_ids, ex.attention_mask).lastHiddenState,
      ),
      0,
    );
    model.dispose();
    again.dispose();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('CLIP: causal mask makes real positions independent of later tokens; save/reload is exact', async () => {
  const model = await ClipTextEncoder.fromSafetensors(path.join(FIX, 'clip-text/weights.safetensors'));
  const ids = tf.tensor2d(
    [
      [49406, 320, 1125, 539, 49407, 49407, 49407],
      [49406, 320, 1125, 539, 2368, 500, 49407],
    ],
    undefined,
    'int32',
  );
  const out = model.forward(ids);
  const prefix = (t: tf.Tensor, row: number) => tf.slice(t, [row, 0, 0], [1, 4, 64]);
  assert.ok(maxAbsDiff(prefix(out.lastHiddenState, 0), prefix(out.lastHiddenState, 1)) < 1e-5);
  assert.ok(
    maxAbsDiff(
      tf.slice(out.lastHiddenState, [0, 4, 0], [1, 1, 64]),
      tf.slice(out.lastHiddenState, [1, 4, 0], [1, 1, 64]),
    ) > 1e-3,
  );
  const dir = await tempDir();
  try {
    await model.save(dir);
    const again = await ClipTextEncoder.fromSafetensors(dir);
    assert.equal(maxAbsDiff(again.forward(ids).textEmbeds!, out.textEmbeds!), 0);
    again.dispose();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
  model.dispose();
});

test('byt5-tiny: built-in encoder is deterministic (fixed values) and shaped by the byte tokenizer', async () => {
  const enc = await loadTextEncoder('byt5-tiny');
  assert.equal(enc.id, 'byt5-tiny-local-seed0');
  assert.equal(enc.dim, 256);
  const out = enc.encode(['a photo of a cat', 'Ünïcödé 猫 — test']);
  assert.deepEqual(out.lengths, [17, 25]);
  assert.deepEqual(Array.from(out.ids[0]), [...Buffer.from('a photo of a cat')].map((b) => b + 3).concat([1]));
  assert.deepEqual(out.hidden.shape, [2, 25, 256]);
  assert.equal(out.pooled, undefined);
  const h = out.hidden.arraySync() as number[][][];
  // Values recorded from this implementation: weights come from our own seeded PRNG, so they never change.
  const want0 = [0.7305184006690979, -1.542051911354065, -1.9535272121429443, -0.9544371962547302];
  const want1 = [-0.8438889384269714, 1.0217448472976685, 1.0398955345153809, 0.25086671113967896];
  h[0][0].slice(0, 4).forEach((v, i) => assert.ok(Math.abs(v - want0[i]) < 1e-4, `${v} vs ${want0[i]}`));
  h[1][3].slice(0, 4).forEach((v, i) => assert.ok(Math.abs(v - want1[i]) < 1e-4, `${v} vs ${want1[i]}`));
  // Padding does not change the real positions of the shorter row.
  const alone = enc.encode(['a photo of a cat']).hidden;
  assert.ok(maxAbsDiff(alone, tf.slice(out.hidden, [0, 0, 0], [1, 17, 256])) < 1e-5);
  // Same weights and (within float error) the same states on the wasm backend.
  const cpuHidden = out.hidden.arraySync();
  await onBackend('wasm', async () => {
    const wasmEnc = await loadTextEncoder('byt5-tiny');
    const w = wasmEnc.encode(['a photo of a cat', 'Ünïcödé 猫 — test']).hidden;
    assert.ok(maxAbsDiff(w, tf.tensor(cpuHidden)) < 1e-4);
    wasmEnc.dispose();
  });
  enc.dispose();
});

test('byt5-tiny states tell which object a word belongs to (local random attention); HF init does not', async () => {
  const { T5Encoder } = await import('../../src/models/text/t5.ts');
  const { BYT5_TINY_CONFIG } = await import('../../src/models/text/encoders.ts');
  const a = 'a red circle on a blue background';
  const b = 'a blue circle on a red background';
  // Cosine of the mean state over the bytes of "red" in its two roles.
  const roleCosine = (encode: (t: string[]) => tf.Tensor3D) => {
    const [ha, hb] = [a, b].map((t) => encode([t]).arraySync()[0] as number[][]);
    const mean = (h: number[][], t: string) => {
      const i = t.indexOf('red');
      return h[0].map((_, d) => h[i][d] + h[i + 1][d] + h[i + 2][d]);
    };
    const [x, y] = [mean(ha, a), mean(hb, b)];
    const dot = x.reduce((s, v, d) => s + v * y[d], 0);
    return dot / Math.sqrt(x.reduce((s, v) => s + v * v, 0) * y.reduce((s, v) => s + v * v, 0));
  };
  const enc = await loadTextEncoder('byt5-tiny');
  const builtin = roleCosine((t) => enc.encode(t).hidden);
  enc.dispose();
  const hf = new T5Encoder(BYT5_TINY_CONFIG, { seed: 0 });
  const ids = (t: string) => tf.tensor2d([[...Buffer.from(t)].map((x) => x + 3).concat([1])], undefined, 'int32');
  const hfCos = roleCosine((t) => hf.forward(ids(t[0]), tf.onesLike(ids(t[0]))).lastHiddenState as tf.Tensor3D);
  hf.dispose();
  assert.ok(hfCos > 0.99, `HF init: ${hfCos}`);
  assert.ok(builtin < 0.85, `built-in: ${builtin}`);
  await assert.rejects(loadTextEncoder('byt5-tiny-seed0'), /replaced by 'byt5-tiny'/);
});

test('loadTextEncoder t5:DIR and clip:DIR read HF-style directories (config, weights, tokenizer.json)', async () => {
  const dir = await tempDir();
  try {
    const clipDir = path.join(dir, 'clip-small');
    await fsp.mkdir(clipDir);
    await fsp.symlink(path.join(FIX, 'clip-text/weights.safetensors'), path.join(clipDir, 'model.safetensors'));
    await fsp.copyFile(path.join(FIX, 'clip-text/config.json'), path.join(clipDir, 'config.json'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      await fsp.copyFile(path.join(FIX, 'tokenizers/clip', f), path.join(clipDir, f));
    const clip = await loadTextEncoder(`clip:${clipDir}`);
    assert.equal(clip.id, 'clip-clip-small');
    const c = clip.encode(['a photo of a cat', 'a dog']);
    assert.deepEqual(Array.from(c.ids[0]), [49406, 320, 1125, 539, 320, 2368, 49407]);
    assert.deepEqual(c.hidden.shape, [2, 77, 64]);
    assert.deepEqual(c.pooled!.shape, [2, 32]);
    // hidden = penultimate layer; the model's own forward on the same ids agrees.
    const model = await ClipTextEncoder.fromSafetensors(clipDir);
    const b = clip.tokenizer.batch(['a photo of a cat', 'a dog']);
    const ref = model.forward(tf.tensor2d(b.ids, [2, 77], 'int32'), tf.tensor2d(b.mask, [2, 77], 'int32'));
    assert.equal(maxAbsDiff(c.hidden, ref.penultimateHiddenState), 0);
    assert.equal(maxAbsDiff(c.pooled!, ref.textEmbeds!), 0);
    model.dispose();
    clip.dispose();

    const t5Dir = path.join(dir, 't5-small');
    await fsp.mkdir(t5Dir);
    await fsp.symlink(path.join(FIX, 't5-encoder/weights.safetensors'), path.join(t5Dir, 'model.safetensors'));
    await fsp.copyFile(path.join(FIX, 't5-encoder/config.json'), path.join(t5Dir, 'config.json'));
    await assert.rejects(loadTextEncoder(`t5:${t5Dir}`), /tokenizer\.json/);
    const pieces = [
      ['<pad>', 0],
      ['</s>', 0],
      ['<unk>', 0],
      ['▁a', -1],
      ['▁cat', -1],
      ['▁', -3],
      ['a', -5],
      ['c', -5],
      ['t', -5],
    ];
    await fsp.writeFile(
      path.join(t5Dir, 'tokenizer.json'),
      JSON.stringify({
        version: '1.0',
        added_tokens: [],
        normalizer: null,
        decoder: null,
        pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' },
        post_processor: {
          type: 'TemplateProcessing',
          single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
          pair: [],
          special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
        },
        model: { type: 'Unigram', unk_id: 2, vocab: pieces },
      }),
    );
    const t5 = await loadTextEncoder(`t5:${t5Dir}`);
    assert.equal(t5.id, 't5-t5-small');
    const t = t5.encode(['a cat', 'a']);
    assert.deepEqual(
      t.ids.map((r) => Array.from(r)),
      [
        [3, 4, 1],
        [3, 1],
      ],
    );
    assert.deepEqual(t.hidden.shape, [2, 3, 64]);
    t5.dispose();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("the demo's word-level T5 directory loads as t5:DIR: one id per word, <unk> for others, same files for the same seed", async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'muse-demo-t5-'));
  try {
    const captions = ['a red circle on a blue background', 'A green star on a white background'];
    assert.deepEqual(captionWords(captions), [
      'a',
      'background',
      'blue',
      'circle',
      'green',
      'on',
      'red',
      'star',
      'white',
    ]);
    await writeDemoTextEncoder(path.join(dir, 'one'), captions);
    await writeDemoTextEncoder(path.join(dir, 'two'), captions);
    const bytes = (d: string) => fsp.readFile(path.join(dir, d, 'model.safetensors'));
    assert.ok((await bytes('one')).equals(await bytes('two')), 'deterministic weights');
    const enc = await loadTextEncoder(`t5:${path.join(dir, 'one')}`);
    try {
      assert.equal(enc.kind, 't5');
      assert.equal(enc.dim, 128);
      // vocabulary after <pad> 0, </s> 1, <unk> 2: a=3, background=4, blue=5, circle=6, ..., red=9, star=10
      const e = enc.encode(['a red star on a blue background', 'a zebra, red']);
      assert.deepEqual(Array.from(e.ids[0]), [3, 9, 10, 8, 3, 5, 4, 1]);
      assert.deepEqual(Array.from(e.ids[1]), [3, 2, 2, 9, 1]);
      assert.deepEqual(e.hidden.shape, [2, 8, 128]);
      assert.ok(Array.from(await e.hidden.data()).every(Number.isFinite));
      e.hidden.dispose();
    } finally {
      enc.dispose();
    }
    await assert.rejects(writeDemoTextEncoder(path.join(dir, 'none'), []), /no captions/);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
