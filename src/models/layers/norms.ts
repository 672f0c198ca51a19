// Normalisations over the last axis, as the references compute them.
import * as tf from '@tensorflow/tfjs';

/** F.layer_norm: (x - mean) / sqrt(var + eps) (biased variance), then optional weight and bias. */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor | null, bias: tf.Tensor | null, eps: number): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), -1, true);
  let y = tf.mul(centred, tf.rsqrt(tf.add(variance, eps)));
  if (weight) y = tf.mul(y, weight);
  if (bias) y = tf.add(y, bias);
  return y;
}

/** RMSNorm / T5LayerNorm: x * rsqrt(mean(x²) + eps) * weight (no centring, no bias). */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor | null, eps: number): tf.Tensor {
  const ms = tf.mean(tf.square(x), -1, true);
  const y = tf.mul(x, tf.rsqrt(tf.add(ms, eps)));
  return weight ? tf.mul(y, weight) : y;
}
