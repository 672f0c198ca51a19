// nn.Linear with PyTorch weight layout [out, in]: y = x Wᵀ + b, on inputs of any rank.
import * as tf from '@tensorflow/tfjs';

export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor | null): tf.Tensor {
  const [outF, inF] = weight.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  // 2-D matmul (batch 1) keeps the backends on their fast path.
  const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inF]);
  let y = tf.matMul(x2, weight, false, true);
  if (bias) y = tf.add(y, bias);
  return x.rank === 2 ? y : tf.reshape(y, [...lead, outF]);
}
