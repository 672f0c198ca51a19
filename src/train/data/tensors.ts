/** A loader batch as tfjs tensors (the caller disposes them). */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from './batch.ts';

export interface BatchTensors {
  imageIds: tf.Tensor2D;
  classIds?: tf.Tensor1D;
  textHidden?: tf.Tensor3D;
  textMask?: tf.Tensor2D;
  pooled?: tf.Tensor2D;
}

export function batchTensors(b: Batch): BatchTensors {
  const out: BatchTensors = { imageIds: tf.tensor2d(b.imageIds, b.imageShape, 'int32') };
  if (b.classIds) out.classIds = tf.tensor1d(b.classIds, 'int32');
  if (b.textHidden && b.textShape && b.textMask) {
    out.textHidden = tf.tensor3d(b.textHidden, b.textShape, 'float32');
    out.textMask = tf.tensor2d(Int32Array.from(b.textMask), [b.textShape[0], b.textShape[1]], 'int32');
  }
  if (b.pooled && b.pooledShape) out.pooled = tf.tensor2d(b.pooled, b.pooledShape, 'float32');
  return out;
}
