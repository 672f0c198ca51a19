// VQGAN stage losses: reconstruction, GAN (discriminator and generator sides) and taming's adaptive weight.
import * as tf from '@tensorflow/tfjs';
import { quotedChoices } from '../../util/suggest.ts';

/** Reconstruction losses (`vqgan_training.rec_loss`): the one list. */
export const RECONSTRUCTION_KINDS = ['l1', 'l2'] as const;
export type ReconstructionKind = (typeof RECONSTRUCTION_KINDS)[number];
/** GAN losses (`vqgan_training.discriminator.loss`): the one list. */
export const GAN_LOSS_KINDS = ['hinge', 'vanilla'] as const;
export type GanLossKind = (typeof GAN_LOSS_KINDS)[number];
/** Codebook initialisations (`vqgan_training.codebook_init`): the one list. */
export const CODEBOOK_INITS = ['none', 'kmeans++'] as const;
export type CodebookInit = (typeof CODEBOOK_INITS)[number];

/** Mean absolute (l1) or squared (l2) error over every pixel and channel. */
export function reconstructionLoss(target: tf.Tensor4D, recon: tf.Tensor4D, kind: ReconstructionKind): tf.Scalar {
  if (!RECONSTRUCTION_KINDS.includes(kind))
    throw new Error(`reconstruction loss must be ${quotedChoices(RECONSTRUCTION_KINDS)}, got ${String(kind)}`);
  return tf.tidy(
    () =>
      (kind === 'l1'
        ? tf.mean(tf.abs(tf.sub(target, recon)))
        : tf.mean(tf.squaredDifference(target, recon))) as tf.Scalar,
  );
}

/** taming hinge_d_loss / vanilla_d_loss: 0.5 * (loss on real logits + loss on fake logits). */
export function discriminatorLoss(realLogits: tf.Tensor, fakeLogits: tf.Tensor, kind: GanLossKind): tf.Scalar {
  return tf.tidy(() => {
    if (kind === 'hinge') {
      return tf.mul(
        0.5,
        tf.add(tf.mean(tf.relu(tf.sub(1, realLogits))), tf.mean(tf.relu(tf.add(1, fakeLogits)))),
      ) as tf.Scalar;
    }
    if (kind === 'vanilla') {
      return tf.mul(
        0.5,
        tf.add(tf.mean(tf.softplus(tf.neg(realLogits))), tf.mean(tf.softplus(fakeLogits))),
      ) as tf.Scalar;
    }
    throw new Error(`GAN loss must be ${quotedChoices(GAN_LOSS_KINDS)}, got ${String(kind)}`);
  });
}

/** Generator side, as VQLPIPSWithDiscriminator for both GAN kinds: -mean(D(G(x))). */
export function generatorLoss(fakeLogits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(fakeLogits)) as tf.Scalar);
}

/**
 * taming's calculate_adaptive_weight: ||∇_last nll|| / (||∇_last g|| + 1e-4), clamped to [0, 1e4], times
 * discWeight. `last` is the decoder's final conv weight; the norms are plain numbers (the weight is detached).
 */
export function adaptiveWeight(nllGradNorm: number, gGradNorm: number, discWeight: number): number {
  const w = nllGradNorm / (gGradNorm + 1e-4);
  return Math.min(Math.max(w, 0), 1e4) * discWeight;
}

/** adaptiveWeight on scalar tensors (stays on the device, so no read is needed inside a gradient closure). */
export function adaptiveWeightTensor(nllGradNorm: tf.Scalar, gGradNorm: tf.Scalar, discWeight: number): tf.Scalar {
  return tf.tidy(
    () => tf.mul(tf.clipByValue(tf.div(nllGradNorm, tf.add(gGradNorm, 1e-4)), 0, 1e4), discWeight) as tf.Scalar,
  );
}

/**
 * Gradients w.r.t. the last conv's weight W of two losses that depend on W only through xrec = conv(hIn, W) + b,
 * given their gradients w.r.t. xrec: the vector-Jacobian products of that one conv ('same' padding, stride 1).
 * Returns the two L2 norms as scalar tensors.
 */
export function lastLayerGradNorms(
  hIn: tf.Tensor4D,
  weight: tf.Tensor4D,
  gxA: tf.Tensor4D,
  gxB: tf.Tensor4D,
): [tf.Scalar, tf.Scalar] {
  return tf.tidy(() => {
    const vjp = (dy: tf.Tensor4D) => tf.grad((w: tf.Tensor) => tf.conv2d(hIn, w as tf.Tensor4D, 1, 'same'))(weight, dy);
    return [tf.norm(vjp(gxA)) as tf.Scalar, tf.norm(vjp(gxB)) as tf.Scalar];
  });
}
