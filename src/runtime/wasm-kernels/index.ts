// Kernels registered for the wasm backend: ones it lacks for training, and faster routes for some it has.
import * as tf from '@tensorflow/tfjs';
import { registerBatchMatMulRouting, registerFusedMatMulRouting } from './batch-matmul.ts';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter.ts';
import { registerConv2DBackpropInput } from './conv2d-backprop-input.ts';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.ts';
import { oneHotConfig } from './one-hot.ts';

let registered = false;

/**
 * Registers the project's wasm kernels; must run after @tensorflow/tfjs-backend-wasm is imported and before
 * `tf.setBackend('wasm')`, which runs every kernel's setup function (even when wasm is already current).
 * Idempotent.
 */
export function registerWasmKernels(): void {
  if (registered) return;
  for (const config of [unsortedSegmentSumConfig, conv2DBackpropFilterConfig, oneHotConfig]) {
    if (tf.getKernel(config.kernelName, 'wasm')) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
  registerBatchMatMulRouting();
  registerFusedMatMulRouting();
  registerConv2DBackpropInput();
  registered = true;
}
