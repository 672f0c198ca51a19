// Conditioning options: class dropout to a null class (classifier-free guidance for class-conditional
// models) and self-conditioning (the previous prediction as extra input; off by default).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { MaskGitTransformer } from '../../src/models/transformer/index.ts';
import { dropClasses } from '../../src/train/muse/cond-dropout.ts';
import { SeededRandom } from '../../src/train/data/random.ts';
import { generate } from '../../src/sample/generate.ts';

await tf.setBackend('cpu');

const CLASSES = {
  codebook_size: 16,
  num_vq_tokens: 16,
  max_position_embeddings: 17,
  hidden_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 64,
  num_classes: 3,
  hidden_dropout: 0,
  attention_dropout: 0,
  initializer_range: 0.2,
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
  assert.throws(
    () => new MaskGitTransformer({ ...CLASSES, num_classes: null, null_class: true }),
    /null_class needs num_classes/,
  );

  const cond = { classIds: tf.tensor1d([0, 2], 'int32') };
  const uncond = { classIds: tf.tensor1d([3], 'int32') };
  // Without a null class guidance is refused; with it, guidance changes the images.
  await assert.rejects(
    generate(plain, 2, { steps: 3, guidanceScale: 3, seed: 1, cond, uncond }),
    /class id 3 is outside \[0, 3\)/,
  );
  const g1 = await generate(withNull, 2, { steps: 3, guidanceScale: 1, seed: 1, cond });
  const g3 = await generate(withNull, 2, { steps: 3, guidanceScale: 3, seed: 1, cond, uncond });
  const g3b = await generate(withNull, 2, { steps: 3, guidanceScale: 3, seed: 1, cond, uncond });
  assert.deepEqual(Array.from(g3), Array.from(g3b));
  assert.notDeepEqual(Array.from(g1), Array.from(g3));
  plain.dispose();
  withNull.dispose();
});

const TEXT = {
  codebook_size: 16,
  num_vq_tokens: 16,
  max_position_embeddings: 16,
  hidden_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 64,
  add_cross_attention: true,
  encoder_hidden_size: 8,
  hidden_dropout: 0,
  attention_dropout: 0,
  initializer_range: 0.2,
};

test('self-conditioning is off by default; when on, the previous prediction changes the outputs', async () => {
  const off = new MaskGitTransformer(TEXT, { seed: 5 });
  const on = new MaskGitTransformer({ ...TEXT, self_conditioning: true }, { seed: 5 });
  assert.equal(off.config.self_conditioning, false);
  assert.ok(!off.params.names().includes('self_cond_proj.weight'));
  assert.deepEqual(
    on.params.names().filter((n) => !off.params.names().includes(n)),
    ['self_cond_proj.weight'],
  );
  // Same weights everywhere else.
  for (const [name, v] of off.variables) on.variables.get(name)!.assign(v);
  const ids = tf.tensor2d(
    Array.from({ length: 32 }, (_, i) => (i % 3 === 0 ? 16 : i % 16)),
    [2, 16],
    'int32',
  );
  const ehs = tf.randomNormal([2, 4, 8], 0, 1, 'float32', 9);
  const prev = tf.softmax(tf.randomNormal([2, 16, 16], 0, 2, 'float32', 10));
  const base = off.forward(ids, ehs);
  // On, without a previous prediction: the same as the model without self-conditioning (no bias: zeros in, zeros out).
  assert.equal(await maxAbsDiff(on.forward(ids, ehs), base), 0);
  // On, with one: different logits; off, it is refused rather than ignored.
  assert.ok((await maxAbsDiff(on.forward(ids, ehs, undefined, { selfCond: prev }), base)) > 1e-3);
  assert.throws(() => off.forward(ids, ehs, undefined, { selfCond: prev }), /without self_conditioning/);
  assert.throws(() => on.forward(ids, ehs, undefined, { selfCond: tf.zeros([2, 16, 5]) }), /selfCond has shape/);
  // Sampling feeds the previous step's prediction: the images differ from the same weights without it.
  const cond = { hidden: ehs as tf.Tensor3D };
  const a = await generate(off, 2, { steps: 4, guidanceScale: 1, seed: 2, cond });
  const b = await generate(on, 2, { steps: 4, guidanceScale: 1, seed: 2, cond });
  const b2 = await generate(on, 2, { steps: 4, guidanceScale: 1, seed: 2, cond });
  assert.deepEqual(Array.from(b), Array.from(b2));
  assert.notDeepEqual(Array.from(a), Array.from(b));
  off.dispose();
  on.dispose();
});

test("training with self-conditioning resumes exactly (its coin flips come from the step's stream)", async () => {
  const { mkdirSync, mkdtempSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { writeSyntheticCaches } = await import('../helpers/synthetic-cache.ts');
  const { loadTrainConfig } = await import('../../src/train/config/load.ts');
  const { MuseRunner } = await import('../../src/train/muse/runner.ts');
  const { runTrainingLoop } = await import('../../src/train/run/loop.ts');
  const { readJsonl } = await import('../../src/train/core/index.ts');
  const { onBackend } = await import('../helpers/backend.ts');
  await onBackend('wasm', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-selfcond-'));
    mkdirSync(path.join(tmp, 'shards'));
    await writeSyntheticCaches(tmp, { shards: { 0: 9 }, gridH: 4, gridW: 4, codebookSize: 16, dim: 8 });
    const sets = [
      `data.path=${tmp}`,
      'data.vq_id=vq-test',
      'data.text_id=text-test',
      'data.validation_shards=[]',
      'training.batch_size=3',
      'training.validate_every=0',
      'training.max_steps=6',
      'training.save_every=3',
      'ema.enabled=false',
      `model.transformer=${JSON.stringify({ ...TEXT, self_conditioning: true })}`,
    ];
    const quiet = { write: () => true } as unknown as NodeJS.WriteStream;
    const run = async (dir: string, o: { resume?: string; stopAfter?: number } = {}) => {
      const cfg = loadTrainConfig({
        stage: 'tiny',
        configsDir: path.resolve(import.meta.dirname, '../../configs'),
        sets,
      });
      const runner = await MuseRunner.create({ config: cfg, datasetDirs: [tmp], runDir: dir });
      try {
        await runTrainingLoop({ config: cfg, runDir: dir, runner, out: quiet, ...o });
      } finally {
        runner.dispose();
      }
      return (await readJsonl(path.join(dir, 'log.jsonl'))).filter((r) => 'loss' in r).map((r) => r.loss);
    };
    const whole = await run(path.join(tmp, 'a'));
    await run(path.join(tmp, 'b'), { stopAfter: 3 });
    const resumed = await run(path.join(tmp, 'b'), { resume: 'latest' });
    assert.equal(whole.length, 6);
    assert.deepEqual(resumed, whole);
  });
});
