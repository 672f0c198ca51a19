// OneHot for wasm: tfjs-backend-wasm 4.22's kernel writes integer bit patterns into a float32 output (every
// 1 reads as 1.4e-45), so `tf.oneHot(ids, n, 1, 0, 'float32')` is wrong there. This one fills the output in
// the requested dtype.
import * as tf from '@tensorflow/tfjs';
import { asWasm, type KernelArgs } from './wasm-backend.ts';

function oneHot({ inputs, backend: be, attrs }: KernelArgs): tf.TensorInfo {
  const backend = asWasm(be);
  const { indices } = inputs;
  const { depth, onValue, offValue, dtype } = attrs as {
    depth: number;
    onValue: number;
    offValue: number;
    dtype: tf.DataType;
  };
  const out = backend.makeOutput([...indices.shape, depth], dtype);
  // Heap views are taken after the last allocation (an allocation may grow, and detach, the heap).
  const outVals = backend.typedArrayFromHeap(out);
  const ids = backend.typedArrayFromHeap(indices);
  outVals.fill(offValue);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id >= 0 && id < depth) outVals[i * depth + id] = onValue;
  }
  return out;
}

export const oneHotConfig: tf.KernelConfig = {
  kernelName: 'OneHot',
  backendName: 'wasm',
  kernelFunc: oneHot as unknown as tf.KernelFunc,
};
