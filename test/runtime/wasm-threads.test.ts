// The threaded wasm build under Node (src/runtime/wasm-threads.ts): it starts with the thread pool asked for
// (this file is its own process, so its first wasm start is the threaded one) and computes what the cpu
// backend computes, for the kernels training needs (the project's own wasm kernels included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend.ts';

type Build = () => tf.Tensor[];

async function run(backend: 'cpu' | 'wasm', build: Build): Promise<Float32Array[]> {
  await initBackend(backend, { quiet: true });
  const out = tf.tidy(build);
  const data = await Promise.all(out.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(out);
  return data;
}

test('threaded wasm: starts with 2 threads and matches cpu on conv / matmul / embedding gradients', async () => {
  const choice = await initBackend('wasm', { quiet: true, wasmThreads: 2 });
  assert.equal(choice.name, 'wasm');
  assert.equal(choice.threads, 2, 'the XNNPACK pool has the 2 threads asked for');
  // a later request cannot change the started module: it reports what runs
  assert.equal((await initBackend('wasm', { quiet: true, wasmThreads: 1 })).threads, 2);
  const r = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
  const build: Build = () => {
    const x = r([2, 12, 12, 8], 1);
    const w = r([3, 3, 8, 16], 2);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf
        .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')
        .square()
        .sum(),
    )([x, w]);
    const table = r([50, 32], 3);
    const ids = tf.tensor1d([3, 7, 7, 49, 0], 'int32');
    const dTable = tf.grad((t: tf.Tensor) => tf.gather(t, ids).square().sum())(table);
    const mm = tf.matMul(r([3, 70, 65], 4), r([3, 70, 66], 5), true, false);
    return [dx, dw, dTable, mm, tf.matMul(r([256, 128], 6), r([128, 192], 7))];
  };
  const wasm = await run('wasm', build);
  const cpu = await run('cpu', build);
  cpu.forEach((ref, i) => {
    let scale = 0;
    let diff = 0;
    for (let j = 0; j < ref.length; j++) {
      scale = Math.max(scale, Math.abs(ref[j]));
      diff = Math.max(diff, Math.abs(ref[j] - wasm[i][j]));
    }
    assert.ok(scale > 0);
    assert.ok(diff <= 1e-5 * scale, `output ${i}: max |threaded wasm - cpu| ${diff}, scale ${scale}`);
  });
});
