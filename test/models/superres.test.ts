// Multi-axis (block + grid) attention equals full attention restricted to the same pattern; the super-res
// transformer's inputs, checks, save/load and multi-axis option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { attention } from '../../src/models/layers/attention.ts';
import {
  blockPartition,
  blockUnpartition,
  gridPartition,
  gridUnpartition,
  multiAxisAttention,
  multiAxisBias,
} from '../../src/models/layers/multi-axis-attention.ts';
import { SuperResTransformer } from '../../src/models/superres/index.ts';
import { onBackend } from '../helpers/backend.ts';

await tf.setBackend('cpu');

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  assert.deepEqual(a.shape, b.shape);
  const [x, y] = await Promise.all([a.data(), b.data()]);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

test('block and grid partitions group the right tokens and invert exactly', async () => {
  // Token value = its index, one channel: the rows of a partition list the indices of a group.
  const [h, w] = [4, 6];
  const x = tf.reshape(tf.range(0, h * w, 1, 'float32'), [1, h * w, 1]);
  const blocks = Array.from(await blockPartition(x, h, w, 2).data());
  assert.deepEqual(blocks.slice(0, 8), [0, 1, 6, 7, 2, 3, 8, 9]); // the first two 2x2 blocks
  const grids = Array.from(await gridPartition(x, h, w, 2).data());
  assert.deepEqual(grids.slice(0, 8), [0, 3, 12, 15, 1, 4, 13, 16]); // tokens spaced (2, 3) apart
  assert.equal(await maxAbsDiff(blockUnpartition(blockPartition(x, h, w, 2), 1, h, w, 2), x), 0);
  assert.equal(await maxAbsDiff(gridUnpartition(gridPartition(x, h, w, 2), 1, h, w, 2), x), 0);
});

for (const backend of ['cpu', 'wasm'] as const) {
  test(`multi-axis attention equals full attention masked to the block + grid pattern (${backend})`, () =>
    onBackend(backend, async () => {
      const [b, side, heads, hd] = [2, 8, 4, 6];
      const t = side * side;
      const q = tf.randomNormal([b, t, heads * hd], 0, 1, 'float32', 1);
      const k = tf.randomNormal([b, t, heads * hd], 0, 1, 'float32', 2);
      const v = tf.randomNormal([b, t, heads * hd], 0, 1, 'float32', 3);
      for (const [block, grid] of [
        [2, 4],
        [4, 2],
        [8, 1],
      ]) {
        const scale = 1 / Math.sqrt(hd);
        const fast = multiAxisAttention(q, k, v, heads, { height: side, width: side, block, grid, scale });
        const full = attention(q, k, v, heads, { scale, bias: multiAxisBias(side, side, heads, block, grid) });
        const d = await maxAbsDiff(fast, full);
        assert.ok(d < 1e-5, `block ${block} grid ${grid}: max |Δ| ${d}`);
        // And it is not full attention.
        assert.ok((await maxAbsDiff(fast, attention(q, k, v, heads, { scale }))) > 1e-2);
      }
    }));
}

const SMALL = {
  codebook_size: 24,
  num_vq_tokens: 64,
  lowres_codebook_size: 12,
  num_lowres_tokens: 16,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_lowres_layers: 1,
  num_attention_heads: 4,
  intermediate_size: 32,
  encoder_hidden_size: 8,
  initializer_range: 0.2,
};

function inputs(b = 2) {
  return {
    ids: tf.tensor2d(
      Array.from({ length: b * 64 }, (_, i) => (i * 5) % 25),
      [b, 64],
      'int32',
    ),
    lowres: tf.tensor2d(
      Array.from({ length: b * 16 }, (_, i) => (i * 7) % 12),
      [b, 16],
      'int32',
    ),
    ehs: tf.randomNormal([b, 5, 8], 0, 1, 'float32', 4),
  };
}

test('super-res logits depend on the low-res tokens and the text; bad inputs are named', async () => {
  const m = new SuperResTransformer(SMALL, { seed: 1 });
  const x = inputs();
  const base = m.forward(x.ids, x.ehs, undefined, { lowresIds: x.lowres });
  assert.deepEqual(base.shape, [2, 64, 24]);
  const otherLow = m.forward(x.ids, x.ehs, undefined, { lowresIds: tf.sub(11, x.lowres) });
  assert.ok((await maxAbsDiff(base, otherLow)) > 1e-3);
  const otherText = m.forward(x.ids, tf.mul(x.ehs, -1), undefined, { lowresIds: x.lowres });
  assert.ok((await maxAbsDiff(base, otherText)) > 1e-3);
  assert.throws(() => m.forward(x.ids, x.ehs), /lowresIds/);
  assert.throws(
    () => m.forward(x.ids, x.ehs, undefined, { lowresIds: tf.slice(x.lowres, [0, 0], [2, 9]) }),
    /lowresIds has shape/,
  );
  assert.throws(() => new SuperResTransformer({ ...SMALL, attention: 'multi_axis', block_size: 3 }), /block_size 3/);
  assert.throws(() => new SuperResTransformer({ ...SMALL, typo_key: 1 }), /unknown key/);
  m.dispose();
});

test('super-res with multi_axis attention: same weights as full, different outputs; save/load round trip', async () => {
  const full = new SuperResTransformer(SMALL, { seed: 2 });
  const axis = new SuperResTransformer({ ...SMALL, attention: 'multi_axis', block_size: 2, grid_size: 4 }, { seed: 2 });
  assert.deepEqual(full.params.names(), axis.params.names());
  const x = inputs();
  const a = full.forward(x.ids, x.ehs, undefined, { lowresIds: x.lowres });
  const b = axis.forward(x.ids, x.ehs, undefined, { lowresIds: x.lowres });
  assert.ok((await maxAbsDiff(a, b)) > 1e-4);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'muse-superres-'));
  try {
    await axis.save(dir);
    const again = await SuperResTransformer.fromSafetensors(dir);
    assert.equal(again.config.attention, 'multi_axis');
    assert.equal(await maxAbsDiff(again.forward(x.ids, x.ehs, undefined, { lowresIds: x.lowres }), b), 0);
    again.dispose();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
    full.dispose();
    axis.dispose();
  }
});
