/** Shared by the model tests (not a test file itself: `npm test` runs test/*.test.ts only). */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend.ts';
import { skipUnlessAvailable } from './system-component.ts';

export type TestBackend = 'cpu' | 'wasm' | 'tensorflow';

/** Runs `fn` on the given backend, then returns to cpu (the other tests' backend). */
export async function onBackend(backend: TestBackend, fn: () => Promise<void>): Promise<void> {
  if (backend !== 'cpu') await initBackend(backend, { quiet: true });
  try {
    await fn();
  } finally {
    await tf.setBackend('cpu');
  }
}

let nativeMissing: Promise<string | false> | undefined;

/**
 * node:test's `skip` for a test on the native 'tensorflow' backend: false when its build loads here, else why
 * (with the build command). Skipped, not failed: tensorflow.test.ts is the one that requires the build in CI.
 */
export function tensorflowSkip(): Promise<string | false> {
  nativeMissing ??= initBackend('tensorflow', { quiet: true })
    .then(
      () => false as const,
      (err: Error) => `the native tensorflow backend is not built here: ${err.message}`.slice(0, 300),
    )
    .finally(() => tf.setBackend('cpu'));
  return nativeMissing;
}

/**
 * node:test's `skip` for the webgpu tests: false when a WebGPU adapter opens here, else why (with how to install
 * lavapipe). With CI set a missing adapter fails instead (skipUnlessAvailable).
 */
export async function webgpuSkip(): Promise<string | false> {
  let missing: string | undefined;
  try {
    await initBackend('webgpu', { quiet: true });
  } catch (err) {
    missing = `no WebGPU adapter was found: ${(err as Error).message}`;
  } finally {
    await tf.setBackend('cpu');
  }
  return skipUnlessAvailable('webgpu', missing, 'install Mesa lavapipe: mesa-vulkan-drivers from bookworm-backports');
}
