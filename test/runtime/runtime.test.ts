import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend.ts';

type Build = () => tf.Tensor | tf.Tensor[];

/** Runs `build` on a backend and returns every output as a flat array. */
async function runOn(backend: 'cpu' | 'wasm', build: Build): Promise<Float32Array[]> {
  await initBackend(backend, { quiet: true });
  const out = tf.tidy(() => {
    const r = build();
    return Array.isArray(r) ? r : [r];
  });
  const data = await Promise.all(out.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(out);
  return data;
}

/** max |wasm - cpu| <= tol * max |cpu| for every output. */
async function assertSameOnWasm(name: string, build: Build, tol = 1e-5) {
  const ref = await runOn('cpu', build);
  const got = await runOn('wasm', build);
  assert.equal(got.length, ref.length);
  ref.forEach((r, i) => {
    assert.equal(got[i].length, r.length, `${name}[${i}] size`);
    let scale = 0;
    let diff = 0;
    for (let j = 0; j < r.length; j++) {
      scale = Math.max(scale, Math.abs(r[j]));
      diff = Math.max(diff, Math.abs(r[j] - got[i][j]));
    }
    assert.ok(scale > 0, `${name}[${i}] is all zeros: the comparison would be vacuous`);
    assert.ok(diff <= tol * scale, `${name}[${i}]: max |wasm - cpu| = ${diff}, scale ${scale}`);
  });
}

const randn = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

test('initBackend: auto picks a backend, reports what failed, and is idempotent', async () => {
  const first = await initBackend('auto', { quiet: true });
  assert.ok(['tensorflow', 'wasm', 'cpu'].includes(first.name));
  assert.equal(first.name, tf.getBackend());
  // The native CUDA slot comes first and is tried with a reason (no build, or a CPU-only build here).
  assert.ok(
    first.tried.some((t) => t.startsWith('native TensorFlow (CUDA): ')),
    first.tried.join('; '),
  );
  if (first.name !== 'tensorflow') {
    assert.ok(
      first.tried.some((t) => /^native TensorFlow \(CPU\): .*npm run build:tensorflow/.test(t)),
      first.tried.join('; '),
    );
  }
  assert.equal(await initBackend('auto', { quiet: true }), first);
  const cpu = await initBackend('cpu', { quiet: true });
  assert.equal(cpu.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  const wasm = await initBackend('wasm', { quiet: true });
  assert.equal(wasm.name, 'wasm');
  await assert.rejects(initBackend('bogus' as 'cpu', { quiet: true }), /unknown backend/);
  if (first.name !== 'tensorflow') {
    await assert.rejects(
      initBackend('tensorflow', { quiet: true }),
      /no native TensorFlow build .* npm run build:tensorflow/,
    );
    assert.equal(tf.getBackend(), 'wasm'); // a failed choice leaves the current backend alone
  }
});

test('wasm matmul: every transpose combination, batches and broadcasting equal cpu', async () => {
  const a = () => randn([3, 2, 17, 23], 1);
  const aT = () => randn([3, 2, 23, 17], 2);
  const b = () => randn([3, 2, 23, 19], 3);
  const bT = () => randn([3, 2, 19, 23], 4);
  await assertSameOnWasm('nn', () => tf.matMul(a(), b()));
  await assertSameOnWasm('tn', () => tf.matMul(aT(), b(), true, false));
  await assertSameOnWasm('nt', () => tf.matMul(a(), bT(), false, true));
  await assertSameOnWasm('tt', () => tf.matMul(aT(), bT(), true, true));
  await assertSameOnWasm('2d nt', () => tf.matMul(randn([31, 8], 5), randn([12, 8], 6), false, true));
  // Operands with both sides >= 64 are transposed by the tiled JS copy, narrower ones by the wasm kernel.
  await assertSameOnWasm('large tn', () => tf.matMul(randn([2, 70, 65], 14), randn([2, 70, 66], 15), true, false));
  await assertSameOnWasm('large nt', () => tf.matMul(randn([67, 64], 16), randn([100, 64], 17), false, true));
  await assertSameOnWasm('shared right operand', () => tf.matMul(a(), randn([23, 5], 7)));
  await assertSameOnWasm('broadcast left', () => tf.matMul(randn([1, 2, 17, 23], 8), b()));
  await assertSameOnWasm('broadcast right', () => tf.matMul(randn([3, 2, 4, 6], 9), randn([1, 1, 6, 5], 10)));
  await assertSameOnWasm('fused bias relu, batched nt', () =>
    tf.fused.matMul({
      a: randn([6, 17, 23], 11) as tf.Tensor3D,
      b: randn([1, 19, 23], 12) as tf.Tensor3D,
      transposeB: true,
      bias: randn([19], 13),
      activation: 'relu',
    }),
  );
});

test('wasm conv gradients (filter and input) equal cpu for strides, paddings and kernel sizes', async () => {
  const cases: Array<[number, number, number, number, 'same' | 'valid']> = [
    [3, 5, 7, 1, 'same'],
    [3, 5, 7, 2, 'same'],
    [1, 4, 6, 1, 'valid'],
    [3, 3, 4, 1, 'valid'],
    [4, 3, 4, 1, 'same'],
    // >= 16 input channels at stride 1: the filter gradient runs as a convolution (conv2d-backprop-filter.ts)
    [3, 16, 8, 1, 'same'],
    [4, 32, 6, 1, 'same'],
    [3, 16, 5, 1, 'valid'],
    [1, 32, 16, 1, 'same'],
    [3, 16, 8, 2, 'same'],
  ];
  for (const [k, c, oc, s, pad] of cases) {
    await assertSameOnWasm(`conv k${k} s${s} ${pad}`, () => {
      const x = randn([2, 9, 10, c], 20);
      const w = randn([k, k, c, oc], 21);
      const weights = tf.linspace(0.5, 1.5, oc); // a non-uniform dy
      const g = tf.grads((x: tf.Tensor, w: tf.Tensor) =>
        tf
          .conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, pad)
          .mul(weights)
          .sum(),
      );
      return g([x, w]);
    });
  }
});

test('wasm UnsortedSegmentSum drops out-of-range ids and equals cpu', async () => {
  await assertSameOnWasm('segment sum', () => {
    const x = randn([6, 3], 30);
    const ids = tf.tensor1d([2, 0, 2, 5, -1, 1], 'int32');
    return tf.unsortedSegmentSum(x, ids, 4);
  });
});

test('gradients of a small model (embedding, conv, transposed and batched matmuls) on wasm equal cpu', async () => {
  const build = () => {
    const emb = randn([50, 16], 40);
    const conv = randn([3, 3, 16, 16], 41).mul(0.2);
    const wq = randn([16, 16], 42).mul(0.3);
    const wk = randn([16, 16], 43).mul(0.3);
    const wo = randn([50, 16], 44).mul(0.3); // [out, in], used with transposeB like nn.Linear
    const ids = tf.tensor2d([[1, 4, 4, 9, 0, 33, 2, 7, 7, 1, 5, 6, 8, 3, 3, 49]], [1, 16], 'int32').tile([2, 1]);
    const labels = tf.oneHot(
      tf.tensor2d([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3]], [1, 16], 'int32').tile([2, 1]),
      50,
    );
    const loss = (emb: tf.Tensor, conv: tf.Tensor, wq: tf.Tensor, wk: tf.Tensor, wo: tf.Tensor) => {
      const h = tf.gather(emb, ids); // [2, 16, 16]
      const img = h.reshape([2, 4, 4, 16]);
      const c = tf.conv2d(img as tf.Tensor4D, conv as tf.Tensor4D, 1, 'same').reshape([2, 16, 16]);
      const x = h.add(tf.sigmoid(c).mul(c)); // SiLU residual
      // tfjs has no gradient for a rank-3 x rank-2 matMul: flatten the tokens, as a Linear layer would.
      const flat = x.reshape([32, 16]);
      const q = tf.matMul(flat, wq).reshape([2, 16, 2, 8]).transpose([0, 2, 1, 3]);
      const k = tf.matMul(flat, wk).reshape([2, 16, 2, 8]).transpose([0, 2, 1, 3]);
      const att = tf.softmax(tf.matMul(q, k, false, true).div(Math.sqrt(8))); // batched, transposed
      const y = tf.matMul(att, q).transpose([0, 2, 1, 3]).reshape([2, 16, 16]);
      const logits = tf.matMul(y.add(x).reshape([32, 16]), wo, false, true).reshape([2, 16, 50]);
      return tf.losses.softmaxCrossEntropy(labels, logits);
    };
    const { value, grads } = tf.valueAndGrads(loss)([emb, conv, wq, wk, wo]);
    return [value, ...grads];
  };
  await assertSameOnWasm('model', build, 2e-5);
});

test('nearest-neighbour upsampling gradient is right for batch > 1 on cpu (fixed kernel) and wasm', async () => {
  const build = () => {
    const x = randn([2, 4, 4, 3], 50);
    const w = randn([2, 8, 8, 3], 51);
    const g = tf.grad((x: tf.Tensor) =>
      tf.image
        .resizeNearestNeighbor(x as tf.Tensor4D, [8, 8])
        .mul(w)
        .sum(),
    )(x);
    return [g, tf.avgPool(w as tf.Tensor4D, 2, 2, 'valid').mul(4)]; // each input pixel feeds a 2x2 block
  };
  for (const backend of ['cpu', 'wasm'] as const) {
    const [got, expected] = await runOn(backend, build);
    const diff = got.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i])), 0);
    assert.ok(diff < 1e-5, `${backend}: max diff ${diff}`);
  }
});

test('wasm OneHot gives real values in float32 and int32 (the stock kernel wrote int bits into floats)', async () => {
  const ids = [0, 3, -1, 7, 2];
  await assertSameOnWasm('oneHot float32', () => tf.oneHot(tf.tensor1d(ids, 'int32'), 5, 1, 0, 'float32'), 0);
  await assertSameOnWasm(
    'oneHot on/off',
    () => tf.oneHot(tf.tensor2d([ids, ids], [2, 5], 'int32'), 4, 0.9, 0.025, 'float32'),
    0,
  );
  const [f] = await runOn('wasm', () => tf.oneHot(tf.tensor1d([1], 'int32'), 3, 1, 0, 'float32'));
  assert.deepEqual(Array.from(f), [0, 1, 0]);
  const [i] = await runOn('wasm', () => tf.oneHot(tf.tensor1d([2], 'int32'), 3));
  assert.deepEqual(Array.from(i), [0, 0, 1]);
});
