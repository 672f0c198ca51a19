// Multi-head scaled dot-product attention on [B, T, D] tensors, heads = contiguous slices of D.
// Written with rank-4 transposes and 3-D batched matmuls only (rank-5 transposes are slow on wasm), and with
// keys transposed once so the score matmul has no transposed operand.
import * as tf from '@tensorflow/tfjs';

/** [B, T, H·hd] -> [B·H, T, hd]. */
export function splitHeads(x: tf.Tensor, numHeads: number): tf.Tensor3D {
  const [b, t, d] = x.shape as [number, number, number];
  const hd = d / numHeads;
  const x4 = tf.transpose(tf.reshape(x, [b, t, numHeads, hd]), [0, 2, 1, 3]);
  return tf.reshape(x4, [b * numHeads, t, hd]);
}

/** [B, S, H·hd] -> [B·H, hd, S] (keys laid out for q·kᵀ). */
export function splitHeadsTransposed(x: tf.Tensor, numHeads: number): tf.Tensor3D {
  const [b, s, d] = x.shape as [number, number, number];
  const hd = d / numHeads;
  const x4 = tf.transpose(tf.reshape(x, [b, s, numHeads, hd]), [0, 2, 3, 1]);
  return tf.reshape(x4, [b * numHeads, hd, s]);
}

/** [B·H, T, hd] -> [B, T, H·hd]. */
export function mergeHeads(x: tf.Tensor, batch: number): tf.Tensor3D {
  const [bh, t, hd] = x.shape as [number, number, number];
  const h = bh / batch;
  const x4 = tf.transpose(tf.reshape(x, [batch, h, t, hd]), [0, 2, 1, 3]);
  return tf.reshape(x4, [batch, t, h * hd]);
}

export interface AttentionOptions {
  /** Multiplies q before the product (1/√hd for most models, 1 for T5). */
  scale: number;
  /** Additive score bias broadcastable to [B, H, T, S] (masks, T5 position bias). */
  bias?: tf.Tensor;
  /** Attention-probability dropout rate (training only). */
  dropout?: number;
  /** Seed of the dropout mask (reproducible training); tf's global RNG when absent. */
  dropoutSeed?: number;
}

/** softmax(q·kᵀ·scale + bias)·v with q [B,T,D], k and v [B,S,D]; returns [B,T,D]. */
export function attention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  numHeads: number,
  opts: AttentionOptions,
): tf.Tensor3D {
  const [b, t] = q.shape as [number, number, number];
  const s = k.shape[1] as number;
  const qh = splitHeads(opts.scale === 1 ? q : tf.mul(q, opts.scale), numHeads);
  const kt = splitHeadsTransposed(k, numHeads);
  const vh = splitHeads(v, numHeads);
  let scores: tf.Tensor = tf.matMul(qh, kt);
  if (opts.bias) {
    scores = tf.reshape(tf.add(tf.reshape(scores, [b, numHeads, t, s]), opts.bias), [b * numHeads, t, s]);
  }
  let probs = tf.softmax(scores);
  if (opts.dropout) probs = tf.dropout(probs, opts.dropout, undefined, opts.dropoutSeed);
  return mergeHeads(tf.matMul(probs, vh), b);
}

/** Large negative score for masked keys (finite, so fully masked rows stay finite). */
export const MASK_VALUE = -1e9;

/** Key padding mask [B, S] (1 = attend, 0 = padding) -> additive bias [B, 1, 1, S]. */
export function paddingBias(mask: tf.Tensor): tf.Tensor4D {
  const [b, s] = mask.shape as [number, number];
  const keep = tf.cast(mask, 'float32');
  return tf.reshape(tf.mul(tf.sub(1, keep), MASK_VALUE), [b, 1, 1, s]);
}

/** Causal bias [1, 1, T, T]: 0 on and below the diagonal, MASK_VALUE above. */
export function causalBias(t: number): tf.Tensor4D {
  const data = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) data[i * t + j] = MASK_VALUE;
  return tf.tensor4d(data, [1, 1, t, t]);
}
