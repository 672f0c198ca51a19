// BatchMatMul / _FusedMatMul routing for the wasm backend. Its C++ kernel uses XNNPACK only for a batch of 1
// with no transposed operand (15-18 GFLOP/s here); anything else falls to a naive loop (~1 GFLOP/s). We
// materialise transposes with the wasm Transpose kernel and run batched products as a series of batch-1
// products on zero-copy aliases of each batch's slice (or one product when the right operand is shared).
import * as tf from '@tensorflow/tfjs';
import {
  aliasF32,
  asWasm,
  cppId,
  dispose,
  releaseAlias,
  sizeOf,
  transposeLast2,
  type KernelArgs,
  type WasmBackend,
} from './wasm-backend.ts';

type RawMatMul = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

let raw: RawMatMul | undefined;

const shapeBytes = (shape: number[]) => new Uint8Array(new Int32Array(shape).buffer);

/** out[M,N] = a[M,K] @ b[K,N] on the XNNPACK path; arguments are C++ tensor ids (real or aliases). */
export function xnnMatMul(aId: number, bId: number, outId: number, m: number, k: number, n: number): void {
  if (!raw) throw new Error('wasm matmul routing used before the wasm backend was set up');
  raw(aId, shapeBytes([1, m, k]), 3, bId, shapeBytes([1, k, n]), 3, false, false, outId);
}

/** For each flat index of the broadcast batch shape, the flat batch index into a and into b. */
function batchIndices(batchA: number[], batchB: number[], batchOut: number[]): Array<[number, number]> {
  const r = batchOut.length;
  const padA = [...Array(r - batchA.length).fill(1), ...batchA];
  const padB = [...Array(r - batchB.length).fill(1), ...batchB];
  const total = sizeOf(batchOut);
  const result: Array<[number, number]> = [];
  for (let o = 0; o < total; o++) {
    let rest = o;
    let ia = 0;
    let ib = 0;
    let strideA = 1;
    let strideB = 1;
    for (let d = r - 1; d >= 0; d--) {
      const c = rest % batchOut[d];
      rest = Math.floor(rest / batchOut[d]);
      if (padA[d] !== 1) ia += c * strideA;
      if (padB[d] !== 1) ib += c * strideB;
      strideA *= padA[d];
      strideB *= padB[d];
    }
    result.push([ia, ib]);
  }
  return result;
}

/**
 * a @ b with optional transposes and broadcast batch dims, always on the fast path. Returns a new tensor
 * of shape [...batch, M, N]. Exported for other kernels (conv filter gradient).
 */
export function fastMatMul(
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA = false,
  transposeB = false,
): tf.TensorInfo {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error('BatchMatMul on wasm supports float32 only');
  const aT = transposeA ? transposeLast2(backend, a) : undefined;
  const bT = transposeB ? transposeLast2(backend, b) : undefined;
  const A = aT ?? a;
  const B = bT ?? b;
  try {
    const [m, k] = A.shape.slice(-2);
    const [k2, n] = B.shape.slice(-2);
    if (k !== k2) {
      throw new Error(
        `matMul: inner dimensions ${k} and ${k2} differ (shapes ${a.shape} and ${b.shape}, ` +
          `transposeA=${transposeA}, transposeB=${transposeB})`,
      );
    }
    const batchA = A.shape.slice(0, -2);
    const batchB = B.shape.slice(0, -2);
    const batchOut = tf.broadcast_util.assertAndGetBroadcastShape(batchA, batchB);
    const out = backend.makeOutput([...batchOut, m, n], 'float32');
    const sizeA = sizeOf(batchA);
    const sizeB = sizeOf(batchB);
    if (m * n * sizeOf(batchOut) === 0) return out;
    if (k === 0) {
      backend.typedArrayFromHeap(out).fill(0);
      return out;
    }
    if (sizeB === 1) {
      // The right operand is shared: stack every batch of a into one tall matrix.
      xnnMatMul(cppId(backend, A), cppId(backend, B), cppId(backend, out), sizeA * m, k, n);
      return out;
    }
    for (const [o, [ia, ib]] of batchIndices(batchA, batchB, batchOut).entries()) {
      const ida = aliasF32(backend, A, ia * m * k, m * k);
      const idb = aliasF32(backend, B, ib * k * n, k * n);
      const ido = aliasF32(backend, out, o * m * n, m * n);
      try {
        xnnMatMul(ida, idb, ido, m, k, n);
      } finally {
        releaseAlias(backend, ida);
        releaseAlias(backend, idb);
        releaseAlias(backend, ido);
      }
    }
    return out;
  } finally {
    dispose(backend, aT, bT);
  }
}

/** Replaces the wasm BatchMatMul kernel with the router; the original's setup still runs (it owns the cwrap). */
export function registerBatchMatMulRouting(): void {
  const original = tf.getKernel('BatchMatMul', 'wasm');
  if (!original)
    throw new Error('the wasm BatchMatMul kernel is not registered (import @tensorflow/tfjs-backend-wasm first)');
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    setupFunc: (backend: object) => {
      original.setupFunc?.(backend as tf.KernelBackend);
      raw = asWasm(backend).wasm.cwrap('BatchMatMul', null, [
        'number',
        'array',
        'number',
        'number',
        'array',
        'number',
        'number',
        'number',
        'number',
      ]) as unknown as RawMatMul;
    },
    kernelFunc: (({ inputs, backend, attrs }: KernelArgs) => {
      const { transposeA, transposeB } = (attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
      return fastMatMul(asWasm(backend), inputs.a, inputs.b, !!transposeA, !!transposeB);
    }) as unknown as tf.KernelFunc,
  });
}

/**
 * _FusedMatMul (matmul + bias + activation): transposes are materialised and batches with a shared right
 * operand are stacked, then the original fused kernel runs on its XNNPACK path. Other batched cases keep
 * the original (correct, slow) loop.
 */
export function registerFusedMatMulRouting(): void {
  const original = tf.getKernel('_FusedMatMul', 'wasm');
  if (!original) return;
  tf.unregisterKernel('_FusedMatMul', 'wasm');
  tf.registerKernel({
    kernelName: '_FusedMatMul',
    backendName: 'wasm',
    setupFunc: original.setupFunc,
    kernelFunc: (({ inputs, backend: be, attrs }: KernelArgs) => {
      const backend = asWasm(be);
      const { a, b, bias, preluActivationWeights } = inputs;
      const at = (attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
      const callOriginal = (ins: tf.NamedTensorInfoMap, extra: tf.NamedAttrMap) =>
        original.kernelFunc({
          inputs: ins,
          backend: be as tf.KernelBackend,
          attrs: { ...attrs, ...extra },
        }) as tf.TensorInfo;
      const batchB = sizeOf(b.shape.slice(0, -2));
      const batchA = sizeOf(a.shape.slice(0, -2));
      const simple = !at.transposeA && !at.transposeB && batchA === 1 && batchB === 1;
      if (simple || preluActivationWeights != null || a.dtype !== 'float32') return callOriginal(inputs, {});
      const aT = at.transposeA ? transposeLast2(backend, a) : undefined;
      const bT = at.transposeB ? transposeLast2(backend, b) : undefined;
      const A = aT ?? a;
      const B = bT ?? b;
      try {
        const noTranspose = { transposeA: false, transposeB: false };
        if (batchB !== 1) return callOriginal({ a: A, b: B, ...(bias ? { bias } : {}) }, noTranspose);
        const [m, k] = A.shape.slice(-2);
        const n = B.shape[B.shape.length - 1];
        // Same data, viewed as one [1, batch*M, K] matrix (a tensor info is just dataId + shape).
        const tall: tf.TensorInfo = { dataId: A.dataId, shape: [1, batchA * m, k], dtype: A.dtype };
        const flatB: tf.TensorInfo = { dataId: B.dataId, shape: [1, k, n], dtype: B.dtype };
        const out = callOriginal({ a: tall, b: flatB, ...(bias ? { bias } : {}) }, noTranspose);
        out.shape = [...tf.broadcast_util.assertAndGetBroadcastShape(A.shape.slice(0, -2), B.shape.slice(0, -2)), m, n];
        return out;
      } finally {
        dispose(backend, aT, bT);
      }
    }) as unknown as tf.KernelFunc,
  });
}
