// Conditioning options: class dropout to a null class (classifier-free guidance for class-conditional
// models) and self-conditioning (the previous prediction as extra input; off by default).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { MaskGitTransformer } from '../src/models/transformer/index.ts';
import { dropClasses } from '../src/train/muse/cond-dropout.ts';
import { SeededRandom } from '../src/train/data/random.ts';
import { generate } from '../src/sample/generate.ts';

await tf.setBackend('cpu');

const CLASSES = {
  codebook_size: 16, num_vq_tokens: 16, max_position_embeddings: 17, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2,
  intermediate_size: 64, num_classes: 3, hidden_dropout: 0, attention_dropout: 0, initializer_range: 0.2,
};

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const [x, y] = await Promise.all([a.data(), b.data()]);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

test('class dropout replaces class ids by the null class with the given probability, reproducibly', () => {
  const ids = () => Int32Array.from({ length: 1000 }, (_, i) => i % 3);
  const a = ids();
  const dropped = dropClasses(a, 3, 0.1, new SeededRandom(7));
  assert.ok(dropped.length > 60 && dropped.length < 140, `${dropped.length} of 1000 dropped at p = 0.1`);
  for (let i = 0; i < a.length; i++) assert.equal(a[i], dropped.includes(i) ? 3 : i % 3);
  const b = ids();
  assert.deepEqual(dropClasses(b, 3, 0.1, new SeededRandom(7)), dropped);
  assert.deepEqual(dropClasses(ids(), 3, 0, new SeededRandom(7)), []);
});

test('null_class adds a class token before the mask; the null class guides class-conditional sampling', async () => {
  const plain = new MaskGitTransformer(CLASSES, { seed: 1 });
  const withNull = new MaskGitTransformer({ ...CLASSES, null_class: true }, { seed: 1 });
  assert.equal(plain.config.vocab_size, 16 + 3 + 1);
  assert.equal(withNull.config.vocab_size, 16 + 3 + 1 + 1);
  assert.equal(withNull.config.mask_token_id, 20);
  assert.throws(() => new MaskGitTransformer({ ...CLASSES, null_class: true, vocab_size: 20 }), /too small/);
  assert.throws(() => new MaskGitTransformer({ ...CLASSES, num_classes: null, null_class: true }), /null_class needs num_classes/);

  const cond = { classIds: tf.tensor1d([0, 2], 'int32') };
  const uncond = { classIds: tf.tensor1d([3], 'int32') };
  // Without a null class guidance is refused; with it, guidance changes the images.
  await assert.rejects(generate(plain, 2, { steps: 3, guidanceScale: 3, seed: 1, cond, uncond }), /class id 3 is outside \[0, 3\)/);
  const g1 = await generate(withNull, 2, { steps: 3, guidanceScale: 1, seed: 1, cond });
  const g3 = await generate(withNull, 2, { steps: 3, guidanceScale: 3, seed: 1, cond, uncond });
  const g3b = await generate(withNull, 2, { steps: 3, guidanceScale: 3, seed: 1, cond, uncond });
  assert.deepEqual(Array.from(g3), Array.from(g3b));
  assert.notDeepEqual(Array.from(g1), Array.from(g3));
  plain.dispose();
  withNull.dispose();
});
