// Masked cross-entropy with label smoothing, as PyTorch's
// F.cross_entropy(logits.view(-1, V), labels.view(-1), ignore_index=-100, label_smoothing=ε):
// mean over positions whose label ≠ ignore of (1 − ε)·(−log p[label]) + ε·mean_c(−log p[c]).
import * as tf from '@tensorflow/tfjs';

export const IGNORE_INDEX = -100;

/**
 * logits [..., V] float32, labels [...] int32 (IGNORE_INDEX = not scored). Returns a scalar; 0 when no
 * position is scored (PyTorch would give NaN).
 */
export function maskedCrossEntropy(logits: tf.Tensor, labels: tf.Tensor, labelSmoothing = 0): tf.Scalar {
  return tf.tidy(() => {
    const v = logits.shape[logits.rank - 1];
    const flatLogits = tf.reshape(logits, [-1, v]);
    const flatLabels = tf.reshape(tf.cast(labels, 'int32'), [-1]);
    const valid = tf.notEqual(flatLabels, IGNORE_INDEX);
    const safe = tf.where(valid, flatLabels, tf.zerosLike(flatLabels));
    // Target distribution (1 − ε)·onehot + ε/V, so one product covers both terms. (Built as int32 and cast:
    // the stock wasm OneHot is wrong for float32 output unless src/runtime registered its replacement.)
    const onehot = tf.cast(tf.oneHot(safe, v), 'float32');
    const target = tf.add(tf.mul(onehot, 1 - labelSmoothing), labelSmoothing / v);
    const perPosition = tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(flatLogits)), -1));
    const weight = tf.cast(valid, 'float32');
    const count = tf.maximum(tf.sum(weight), 1);
    return tf.div(tf.sum(tf.mul(perPosition, weight)), count) as tf.Scalar;
  });
}
