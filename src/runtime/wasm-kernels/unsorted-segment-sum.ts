// UnsortedSegmentSum for wasm (missing there): the gradient of gather, i.e. of every embedding lookup.
// out[s, ...] = sum of x[i, ...] over the positions i with segmentIds[i] == s; ids outside
// [0, numSegments) are dropped, as in TensorFlow.
import * as tf from '@tensorflow/tfjs';
import { asWasm, sizeOf, type KernelArgs } from './wasm-backend.ts';

function unsortedSegmentSum({ inputs, backend: be, attrs }: KernelArgs): tf.TensorInfo {
  const backend = asWasm(be);
  const { x, segmentIds } = inputs;
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const idRank = segmentIds.shape.length;
  if (x.shape.slice(0, idRank).join() !== segmentIds.shape.join()) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape ${segmentIds.shape} is not a prefix of x shape ${x.shape}`);
  }
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum: unsupported dtype ${x.dtype}`);
  const inner = sizeOf(x.shape.slice(idRank));
  const out = backend.makeOutput([numSegments, ...x.shape.slice(idRank)], x.dtype);
  // Heap views are taken after the last allocation (an allocation may grow, and detach, the heap).
  const outVals = backend.typedArrayFromHeap(out);
  const xVals = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(segmentIds);
  outVals.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) outVals[dst + j] += xVals[src + j];
  }
  return out;
}

export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
};
