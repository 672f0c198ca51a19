// The U-ViT's small ops, written with elementwise ops, pads and slices only so that their gradients exist on
// every backend (the wasm backend has no DepthwiseConv2dNative backprop kernels).
import * as tf from '@tensorflow/tfjs';

/**
 * nn.Conv2d(C, C, 3, padding=1, groups=C) on NHWC: the sum of the 9 shifted copies of the zero-padded input,
 * each times its per-channel tap. `weight` is PyTorch's [C, 1, 3, 3].
 */
export function depthwiseConv3x3(x: tf.Tensor4D, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  if (weight.shape.join(',') !== `${c},1,3,3`)
    throw new Error(`depthwise conv: weight [${weight.shape}] for ${c} channels, expected [${c}, 1, 3, 3]`);
  const padded = tf.pad(x, [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ]);
  const taps = tf.transpose(tf.reshape(weight, [c, 9])); // [9, C], tap = 3·ky + kx
  let out: tf.Tensor | undefined;
  for (let ky = 0; ky < 3; ky++) {
    for (let kx = 0; kx < 3; kx++) {
      const tap = tf.reshape(tf.slice(taps, [3 * ky + kx, 0], [1, c]), [c]);
      const term = tf.mul(tf.slice(padded, [0, ky, kx, 0], [b, h, w, c]), tap);
      out = out ? tf.add(out, term) : term;
    }
  }
  return (bias ? tf.add(out!, bias) : out!) as tf.Tensor4D;
}

/** ConvNeXt-V2 GlobalResponseNorm on NHWC: gamma·(x·N) + beta + x, N = ‖x‖₂ over (H, W) / (its channel mean + 1e-6). */
export function globalResponseNorm(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor4D {
  const gx = tf.sqrt(tf.sum(tf.square(x), [1, 2], true));
  const nx = tf.div(gx, tf.add(tf.mean(gx, -1, true), 1e-6));
  return tf.add(tf.add(tf.mul(gamma, tf.mul(x, nx)), beta), x) as tf.Tensor4D;
}

/**
 * open-muse's sinusoidal_encode: features [N] -> [N, dim] = [cos(f·ω), sin(f·ω)],
 * ω_i = exp(-i·ln(max_positions) / (dim/2)), i < dim/2 (dim even).
 */
export function sinusoidalEncode(features: tf.Tensor, dim: number, maxPositions = 10000): tf.Tensor2D {
  const half = dim / 2;
  const step = Math.fround(-Math.log(maxPositions) / half);
  const freqs = tf.exp(tf.mul(tf.range(0, half, 1, 'float32'), step));
  const args = tf.mul(tf.reshape(tf.cast(features, 'float32'), [-1, 1]), tf.reshape(freqs, [1, half]));
  return tf.concat([tf.cos(args), tf.sin(args)], 1) as tf.Tensor2D;
}
