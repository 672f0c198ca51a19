// The wasm heap is capped at 4 GiB and overflowing it fails with "memory access out of bounds" rather than an
// out-of-memory error, so callers estimate big allocations up front and say what to lower.
import * as tf from '@tensorflow/tfjs';

export const WASM_HEAP_LIMIT = 4 * 1024 ** 3;

/** Throws a clear error if `bytes` more would not fit in the wasm heap (no-op on other backends). */
export function assertWasmHeapFits(bytes: number, what: string, hint: string): void {
  if (tf.getBackend() !== 'wasm') return;
  const inUse = tf.memory().numBytes;
  if (inUse + bytes <= WASM_HEAP_LIMIT) return;
  const gib = (n: number) => (n / 1024 ** 3).toFixed(2);
  throw new Error(
    `${what} needs ~${gib(bytes)} GiB on the wasm backend (${gib(inUse)} GiB already in use; ` +
      `the heap is capped at 4 GiB): ${hint}`,
  );
}
