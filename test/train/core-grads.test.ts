import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { allreduceGrads, clipByGlobalNorm, globalNorm, GradAccumulator } from '../../src/train/core/grads.ts';
import { SINGLE_PROCESS } from '../../src/runtime/mpi.ts';

const A = [3, -4, 1, 2];
const B = [0.5, -12];
const refNorm = Math.sqrt([...A, ...B].reduce((s, x) => s + x * x, 0));
const mk = () =>
  new Map<string, tf.Tensor>([
    ['a', tf.tensor2d(A, [2, 2])],
    ['b', tf.tensor1d(B)],
  ]);
const disposeAll = (...ms: Array<Map<string, tf.Tensor>>) => {
  for (const m of ms) for (const t of m.values()) t.dispose();
};

test('globalNorm is the L2 norm over every element', async () => {
  const g = mk();
  const n = await globalNorm(g);
  assert.ok(Math.abs(n - refNorm) < 1e-5, `${n} vs ${refNorm}`);
  assert.equal(await globalNorm(new Map()), 0);
  disposeAll(g);
});

test('clipByGlobalNorm scales by maxNorm / (norm + 1e-6) only when that is < 1', async () => {
  const g = mk();
  const before = tf.memory().numTensors;
  const { grads, norm } = await clipByGlobalNorm(g, 2);
  assert.ok(Math.abs(norm - refNorm) < 1e-5);
  const scale = 2 / (refNorm + 1e-6);
  const got = [...(await grads.get('a')!.data()), ...(await grads.get('b')!.data())];
  [...A, ...B].forEach((x, i) => assert.ok(Math.abs(got[i] - x * scale) < 1e-6, `${i}: ${got[i]} vs ${x * scale}`));
  assert.ok(Math.abs((await globalNorm(grads)) - 2) < 1e-5);
  // no clipping needed / disabled: clones with the same values, independent of the inputs
  for (const max of [100, null]) {
    const r = await clipByGlobalNorm(g, max);
    assert.ok(Math.abs(r.norm - refNorm) < 1e-5);
    assert.deepEqual(Array.from(await r.grads.get('b')!.data()), B);
    assert.notEqual(r.grads.get('b'), g.get('b'));
    disposeAll(r.grads);
  }
  disposeAll(grads);
  assert.equal(tf.memory().numTensors, before, 'nothing leaked');
  await assert.rejects(clipByGlobalNorm(g, 0), /maxNorm/);
  // a non-finite norm is reported and nothing is scaled
  const bad = new Map<string, tf.Tensor>([['x', tf.tensor1d([1, Number.POSITIVE_INFINITY])]]);
  const r = await clipByGlobalNorm(bad, 1);
  assert.equal(r.norm, Number.POSITIVE_INFINITY);
  assert.equal((await r.grads.get('x')!.data())[0], 1);
  disposeAll(g, bad, r.grads);
});

test('GradAccumulator returns the mean, owns its inputs and resets', async () => {
  const acc = new GradAccumulator();
  const before = tf.memory().numTensors;
  acc.add(
    new Map([
      ['w', tf.tensor1d([1, 2])],
      ['u', tf.tensor1d([4])],
    ]),
  );
  acc.add(new Map([['w', tf.tensor1d([3, -6])]]));
  acc.add(
    new Map([
      ['w', tf.tensor1d([2, 1])],
      ['u', tf.tensor1d([2])],
    ]),
  );
  assert.equal(acc.count, 3);
  const mean = acc.take();
  assert.equal(acc.count, 0);
  const w = Array.from(await mean.get('w')!.data());
  assert.ok(Math.abs(w[0] - 2) < 1e-6 && Math.abs(w[1] + 1) < 1e-6, `w ${w}`);
  assert.ok(Math.abs((await mean.get('u')!.data())[0] - 2) < 1e-6, 'a missing grad counts as zero');
  disposeAll(mean);
  assert.equal(tf.memory().numTensors, before, 'inputs disposed, no leak');
  assert.throws(() => acc.take(), /nothing was added/);
  acc.add(new Map([['w', tf.tensor1d([1, 2])]]));
  assert.throws(() => acc.add(new Map([['w', tf.tensor1d([1, 2, 3])]])), /w has shape \[3\], earlier ones \[2\]/);
  acc.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('allreduceGrads: buckets of about bucketBytes, in order, one all-reduce each; sums and extras as one fused buffer', async () => {
  // A stand-in for 2 ranks whose other rank holds the same gradients: the sum doubles every value.
  const calls: number[] = [];
  const comm = {
    ...SINGLE_PROCESS,
    size: 2,
    allreduceSum: (buf: Float32Array) => {
      calls.push(buf.length);
      for (let i = 0; i < buf.length; i++) buf[i] *= 2;
    },
  };
  const grads = new Map<string, tf.Tensor>([
    ['a', tf.tensor1d([1, 2, 3])],
    [
      'b',
      tf.tensor2d([
        [4, 5],
        [6, 7],
      ]),
    ],
    ['big', tf.range(0, 10, 1, 'float32')],
    ['c', tf.tensor1d([8])],
  ]);
  try {
    // 32 bytes a bucket: a + b (7 values, 28 B) together, big (40 B) alone, c with the 2 extras last.
    const r = await allreduceGrads(grads, comm, [0.5, 3], 32);
    assert.deepEqual(calls, [7, 10, 1 + 2]);
    assert.equal(r.buckets, 3);
    assert.deepEqual([...r.grads.keys()], ['a', 'b', 'big', 'c']);
    for (const [n, g] of grads) {
      assert.deepEqual(r.grads.get(n)!.shape, g.shape);
      assert.deepEqual(
        Array.from(r.grads.get(n)!.dataSync()),
        Array.from(g.dataSync(), (v) => 2 * v),
        n,
      );
    }
    assert.deepEqual(r.extra, [1, 6]);
    tf.dispose([...r.grads.values()]);
    // The default bucket (25 MB) holds these in one call.
    calls.length = 0;
    const one = await allreduceGrads(grads, comm, [1]);
    assert.deepEqual(calls, [18 + 1]);
    tf.dispose([...one.grads.values()]);
  } finally {
    tf.dispose([...grads.values()]);
  }
});

test('GradAccumulator.takeSum: the weighted sum (weights of micro-batches that already add up to 1)', async () => {
  const acc = new GradAccumulator();
  acc.add(mk(), 0.25);
  acc.add(mk(), 0.75);
  const s = acc.takeSum();
  assert.deepEqual(Array.from(await s.get('a')!.data()), A);
  assert.equal(acc.count, 0);
  disposeAll(s);
  acc.dispose();
});
