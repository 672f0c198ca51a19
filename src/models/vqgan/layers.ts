// VQGAN building blocks on NHWC tensors. Parameters are looked up by their open-muse names.
import * as tf from '@tensorflow/tfjs';

export type ParamLookup = (name: string) => tf.Tensor;

/**
 * open-muse `Conv2dSame`: TF-style SAME padding, pad = max((ceil(i/s)-1)*s + (k-1)*d + 1 - i, 0) with the
 * smaller half on the top/left. tfjs 'same' padding uses the same rule, so it is used directly.
 */
export function conv2dSame(x: tf.Tensor4D, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor4D {
  return tf.fused.conv2d({ x, filter: weight as tf.Tensor4D, strides: 1, pad: 'same', bias });
}

/** torch.nn.GroupNorm(groups, C, eps, affine) on NHWC: statistics per (sample, group) over H, W and the group's channels. */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, groups = 32, eps = 1e-6): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const grouped = x.reshape([b, h * w, groups, c / groups]);
    const { mean, variance } = tf.moments(grouped, [1, 3], true);
    const normed = grouped.sub(mean).mul(tf.rsqrt(variance.add(eps)));
    return normed.reshape([b, h, w, c]).mul(gamma).add(beta) as tf.Tensor4D;
  });
}

export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}

/** Identity forward, zero gradient (PyTorch `.detach()`); tfjs has no stop-gradient op. */
export const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: x.clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;

/**
 * open-muse ResnetBlock: h = conv1(silu(norm1(x))); h = conv2(dropout(silu(norm2(h)))); the residual is x, or
 * — when channels change — nin_shortcut(h), the 1x1 conv applied to the block's own output (as in the
 * original MaskGIT tokenizer; x is then not used). Returns h + residual.
 */
export function resnetBlock(
  p: ParamLookup,
  prefix: string,
  x: tf.Tensor4D,
  hasShortcut: boolean,
  dropout = 0,
  groups = 32,
): tf.Tensor4D {
  return tf.tidy(() => {
    let h = conv2dSame(
      silu(groupNorm(x, p(`${prefix}.norm1.weight`), p(`${prefix}.norm1.bias`), groups)),
      p(`${prefix}.conv1.weight`),
    );
    h = silu(groupNorm(h, p(`${prefix}.norm2.weight`), p(`${prefix}.norm2.bias`), groups));
    if (dropout > 0) h = tf.dropout(h, dropout) as tf.Tensor4D;
    h = conv2dSame(h, p(`${prefix}.conv2.weight`));
    const residual = hasShortcut ? conv2dSame(h, p(`${prefix}.nin_shortcut.weight`)) : x;
    return h.add(residual) as tf.Tensor4D;
  });
}

/** F.avg_pool2d(kernel_size=2, stride=2). */
export function avgPool2x(x: tf.Tensor4D): tf.Tensor4D {
  return tf.avgPool(x, 2, 2, 'valid');
}

/** F.interpolate(scale_factor=2, mode='nearest'): each pixel repeated 2x2. */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  return tf.image.resizeNearestNeighbor(x, [h * 2, w * 2]).reshape([b, h * 2, w * 2, c]) as tf.Tensor4D;
}
