// k-means++ codebook initialisation: finds separated clusters, is deterministic, writes the codebook variable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initCodebookFromLatents, kmeansPlusPlus } from '../../src/train/vqgan/codebook-init.ts';

/** 4 tight clusters in 3-D (offsets +-0.01 around known means), 10 points each, interleaved. */
const MEANS = [
  [0, 0, 0],
  [5, 0, 0],
  [0, 5, 0],
  [0, 0, 5],
];
function clustered(): Float32Array {
  const out = new Float32Array(40 * 3);
  for (let i = 0; i < 40; i++) {
    const m = MEANS[i % 4];
    const jitter = (((i * 7) % 5) - 2) * 0.005; // symmetric around 0 within each cluster
    for (let t = 0; t < 3; t++) out[i * 3 + t] = m[t] + (t === 0 ? jitter : -jitter);
  }
  return out;
}

test('kmeansPlusPlus: one centre per separated cluster, at the cluster mean', () => {
  const data = clustered();
  const r = kmeansPlusPlus(data, 40, 3, 4, 7, 3);
  const found = new Set<number>();
  for (let j = 0; j < 4; j++) {
    const c = Array.from(r.centres.subarray(j * 3, j * 3 + 3));
    const m = MEANS.findIndex((mm) => mm.every((v, t) => Math.abs(v - c[t]) < 0.01));
    assert.ok(m >= 0, `centre ${c} is not at a cluster mean`);
    found.add(m);
  }
  assert.equal(found.size, 4, 'every cluster gets its own centre');
  // Seeds are real rows, one from each cluster.
  assert.deepEqual(new Set(r.seeds.map((s) => s % 4)).size, 4);
  assert.ok(r.inertia < 1e-3, `inertia ${r.inertia}`);
});

test('kmeansPlusPlus: deterministic for a seed; k > distinct rows still fills every code', () => {
  const data = clustered();
  const a = kmeansPlusPlus(data, 40, 3, 6, 3, 2);
  const b = kmeansPlusPlus(data, 40, 3, 6, 3, 2);
  assert.deepEqual(a.seeds, b.seeds);
  assert.deepEqual(Array.from(a.centres), Array.from(b.centres));
  const few = kmeansPlusPlus(new Float32Array([1, 2, 1, 2]), 2, 2, 3, 0, 1);
  assert.equal(few.centres.length, 6);
  for (let j = 0; j < 3; j++) assert.deepEqual(Array.from(few.centres.subarray(j * 2, j * 2 + 2)), [1, 2]);
});

test('kmeansPlusPlus / initCodebookFromLatents: bad input is named', async () => {
  assert.throws(() => kmeansPlusPlus(new Float32Array(5), 2, 3, 2, 0), /data has 5 values/);
  assert.throws(() => kmeansPlusPlus(new Float32Array(6), 2, 3, 0, 0), /k must be/);
  assert.throws(() => kmeansPlusPlus(new Float32Array(6), 2, 3, 1, 0, -1), /iterations/);
  const cb = tf.variable(tf.zeros([4, 3]));
  const bad = tf.zeros([5, 2]) as tf.Tensor2D;
  await assert.rejects(initCodebookFromLatents(cb, bad, 0), /latents must be \[N, 3\]/);
  tf.dispose([cb, bad]);
});

test('initCodebookFromLatents: every code becomes a cluster mean of the latents', async () => {
  const cb = tf.variable(tf.zeros([4, 3]));
  const lat = tf.tensor2d(clustered(), [40, 3]);
  const r = await initCodebookFromLatents(cb, lat, 11, 3);
  assert.deepEqual(Array.from(cb.dataSync()), Array.from(r.centres));
  const rows = cb.arraySync() as number[][];
  const hit = new Set(rows.map((c) => MEANS.findIndex((m) => m.every((v, t) => Math.abs(v - c[t]) < 0.01))));
  assert.deepEqual([...hit].sort(), [0, 1, 2, 3]);
  tf.dispose([cb, lat]);
});
