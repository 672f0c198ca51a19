// The parts of tfjs-backend-wasm's BackendWasm our kernels use (it is not exported with types we can import
// from Node ESM), plus small helpers: zero-copy aliases of tensor slices, calling other wasm kernels.
import * as tf from '@tensorflow/tfjs';

type HeapArray = Float32Array | Int32Array | Uint8Array;

export interface WasmModule {
  HEAPU8: Uint8Array;
  cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
}

export interface WasmBackend {
  wasm: WasmModule;
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: tf.DataId): { id: number; memoryOffset: number; shape: number[]; dtype: tf.DataType } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): HeapArray;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

// Inputs typed as always present: each kernel knows which inputs its op passes.
export type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: tf.NamedAttrMap };

export const asWasm = (backend: unknown) => backend as WasmBackend;

export const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The C++ tensor id of a tensor. */
export function cppId(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).id;
}

/** Byte offset of a tensor's data in the wasm heap. */
export function heapOffset(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset;
}

/**
 * Registers a C++-only tensor id that views `size` float32 elements of an existing tensor, starting at element
 * `elementOffset`; nothing is copied. Release with `releaseAlias` (which frees no memory).
 */
export function aliasF32(backend: WasmBackend, t: tf.TensorInfo, elementOffset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, heapOffset(backend, t) + elementOffset * 4);
  return id;
}

export function releaseAlias(backend: WasmBackend, id: number): void {
  backend.wasm.tfjs.disposeData(id);
}

/** Calls another wasm kernel (by name) from inside a kernel. */
export function runKernel(
  name: string,
  backend: WasmBackend,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const out = tf.getKernel(name, 'wasm').kernelFunc({ inputs, backend: backend as unknown as tf.KernelBackend, attrs });
  return out as tf.TensorInfo;
}

const TILE = 16;

/**
 * Swaps the last two axes into a new tensor. Measured here: for matrices with both sides >= 64 a 16x16-tiled
 * JS copy straight into the wasm heap is ~3x faster than the wasm Transpose kernel (2048x256: 2.1 vs 6.0 ms);
 * for a narrow side (attention heads, 16-32 wide) the wasm kernel is ~5x faster.
 */
export function transposeLast2(backend: WasmBackend, t: tf.TensorInfo): tf.TensorInfo {
  const r = t.shape.length;
  const rows = t.shape[r - 2];
  const cols = t.shape[r - 1];
  if (Math.min(rows, cols) < 64 || t.dtype !== 'float32') {
    const perm = [...Array(r).keys()];
    [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
    return runKernel('Transpose', backend, { x: t }, { perm });
  }
  const batch = sizeOf(t.shape.slice(0, -2));
  const out = backend.makeOutput([...t.shape.slice(0, -2), cols, rows], t.dtype);
  const src = backend.typedArrayFromHeap(t);
  const dst = backend.typedArrayFromHeap(out);
  for (let b = 0; b < batch; b++) {
    const base = b * rows * cols;
    for (let i0 = 0; i0 < rows; i0 += TILE) {
      const iEnd = Math.min(i0 + TILE, rows);
      for (let j0 = 0; j0 < cols; j0 += TILE) {
        const jEnd = Math.min(j0 + TILE, cols);
        for (let i = i0; i < iEnd; i++) {
          const srcRow = base + i * cols;
          for (let j = j0; j < jEnd; j++) dst[base + j * rows + i] = src[srcRow + j];
        }
      }
    }
  }
  return out;
}

export function dispose(backend: WasmBackend, ...ts: Array<tf.TensorInfo | undefined>): void {
  for (const t of ts) if (t) backend.disposeData(t.dataId);
}
