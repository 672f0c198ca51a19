// Nearest-code lookup as one custom-gradient op. The token ids come from an argMin, and tfjs cannot
// differentiate a gather through integer indices that depend on the variables ("gradient of input indices
// must have float32 dtype"). PyTorch builds the codes as one_hot(ids) @ codebook, so the gradient reaches the
// codebook only; this op does the same: d/dcodebook = segment sum of dy per id, d/dlatents = 0.
import * as tf from '@tensorflow/tfjs';

/** Squared distances [N, K] from rows of z [N, D] to codebook rows e [K, D]: |z|^2 + |e|^2 - 2 z.e. */
export function codeDistances(z: tf.Tensor2D, e: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const zz = z.square().sum(1, true);
    const ee = e.square().sum(1);
    return zz.add(ee).sub(tf.matMul(z, e, false, true).mul(2)) as tf.Tensor2D;
  });
}

/** For latents z [N, D]: ids [N] of the nearest codes and the codes [N, D] (differentiable w.r.t. the codebook). */
export function nearestCodes(z: tf.Tensor2D, codebook: tf.Tensor2D): { codes: tf.Tensor2D; ids: tf.Tensor1D } {
  let ids: tf.Tensor1D | undefined;
  const op = tf.customGrad(((zIn: tf.Tensor2D, eIn: tf.Tensor2D, save: (ts: tf.Tensor[]) => void) => {
    // Runs inside the custom kernel: nothing here is recorded on the gradient tape. The kernel's scope
    // disposes what it does not return, so the ids are kept and handed back below.
    ids = tf.keep(tf.tidy(() => tf.argMin(codeDistances(zIn, eIn), 1)) as tf.Tensor1D);
    save([ids]);
    return {
      value: tf.gather(eIn, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        // zIn is disposed by the time the gradient runs: build the zeros from its shape, not from the tensor.
        tf.zeros(zIn.shape, zIn.dtype),
        tf.unsortedSegmentSum(dy, saved[0] as tf.Tensor1D, eIn.shape[0]),
      ],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const codes = (op as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor)(z, codebook) as tf.Tensor2D;
  const kept = ids!;
  const out = kept.clone(); // tracked by the caller's scope, unlike the kept original
  kept.dispose();
  return { codes, ids: out };
}
