/** Shared by the model tests (not a test file itself: `npm test` runs test/*.test.ts only). */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend.ts';

/** Runs `fn` on the given backend, then returns to cpu (the other tests' backend). */
export async function onBackend(backend: 'cpu' | 'wasm', fn: () => Promise<void>): Promise<void> {
  if (backend === 'wasm') await initBackend('wasm', { quiet: true });
  try {
    await fn();
  } finally {
    await tf.setBackend('cpu');
  }
}
