/**
 * LPIPS-style perceptual loss on a user-supplied VGG16 (torchvision `vgg16().features`, safetensors with the
 * names `features.N.weight` / `features.N.bias`, conv weights OIHW). Nothing is downloaded.
 *
 * loss = mean over the 5 taps (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) of
 *        mean over batch and positions of sum over channels (n(f(x)) - n(f(y)))^2,
 * where n() divides each position's feature vector by its L2 norm (+1e-10), as LPIPS's normalize_tensor.
 * This is LPIPS without the learned linear heads (their weights are not part of VGG16), averaged over the
 * taps rather than summed. Inputs are the VQGAN's [0, 1] RGB, normalised with ImageNet mean/std as
 * torchvision's VGG expects. Images must be at least 16 px (four 2x2 max-pools before relu5_3).
 */
import * as tf from '@tensorflow/tfjs';
import { openCheckpoint } from '../../models/safetensors.ts';

/** torchvision vgg16 `features` indices of the 13 convs, and the ReLU indices LPIPS taps. */
export const VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28] as const;
export const VGG16_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512] as const;
/** relu1_2, relu2_2, relu3_3, relu4_3, relu5_3. */
export const LPIPS_TAPS = [3, 8, 15, 22, 29] as const;
/** Max-pools follow these ReLU indices (the pool after relu5_3 is never needed). */
const POOL_AFTER = new Set([3, 8, 15, 22]);

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

export class VggPerceptual {
  private constructor(private readonly weights: Map<string, tf.Tensor>) {}

  /** Loads the 13 convs of VGG16 `features` (extra tensors such as `classifier.*` are ignored). */
  static async fromSafetensors(file: string): Promise<VggPerceptual> {
    const ckpt = await openCheckpoint(file);
    const weights = new Map<string, tf.Tensor>();
    try {
      let cin = 3;
      for (const [k, idx] of VGG16_CONV_INDICES.entries()) {
        const cout = VGG16_CHANNELS[k];
        for (const [suffix, shape] of [
          ['weight', [cout, cin, 3, 3]],
          ['bias', [cout]],
        ] as const) {
          const name = `features.${idx}.${suffix}`;
          if (!ckpt.has(name)) throw new Error(`${file}: not a torchvision VGG16 (missing ${name})`);
          const got = ckpt.info(name).shape;
          if (got.join() !== shape.join())
            throw new Error(`${file}: ${name} has shape [${got}], VGG16 needs [${shape}]`);
          const raw = await ckpt.tensor(name);
          weights.set(name, suffix === 'weight' ? tf.transpose(raw, [2, 3, 1, 0]) : raw.toFloat());
          raw.dispose();
        }
        cin = cout;
      }
    } catch (err) {
      tf.dispose([...weights.values()]);
      throw err;
    } finally {
      await ckpt.close();
    }
    return new VggPerceptual(weights);
  }

  /** Features at the five LPIPS taps for [0, 1] RGB images [B, H, W, 3]. */
  features(x: tf.Tensor4D): tf.Tensor4D[] {
    if (x.rank !== 4 || x.shape[3] !== 3)
      throw new Error(`perceptual loss expects NHWC RGB images, got shape [${x.shape}]`);
    if (x.shape[1] < 16 || x.shape[2] < 16)
      throw new Error(`perceptual loss needs images of at least 16x16, got ${x.shape[1]}x${x.shape[2]}`);
    const out: tf.Tensor4D[] = [];
    let h = tf.div(tf.sub(x, tf.tensor1d(IMAGENET_MEAN)), tf.tensor1d(IMAGENET_STD)) as tf.Tensor4D;
    for (const idx of VGG16_CONV_INDICES) {
      const w = this.weights.get(`features.${idx}.weight`) as tf.Tensor4D;
      h = tf.relu(tf.conv2d(h, w, 1, 'same').add(this.weights.get(`features.${idx}.bias`)!)) as tf.Tensor4D;
      const relu = idx + 1;
      if ((LPIPS_TAPS as readonly number[]).includes(relu)) out.push(h);
      if (relu === 29) break;
      if (POOL_AFTER.has(relu)) h = tf.maxPool(h, 2, 2, 'valid');
    }
    return out;
  }

  /** The scalar loss (differentiable w.r.t. both inputs; the VGG weights are constants). */
  loss(x: tf.Tensor4D, y: tf.Tensor4D): tf.Scalar {
    return tf.tidy(() => {
      const fx = this.features(x);
      const fy = this.features(y);
      const terms = fx.map((a, i) => {
        const d = tf.sub(unitNormalize(a), unitNormalize(fy[i]));
        return tf.mean(tf.sum(tf.square(d), 3));
      });
      return tf.div(tf.addN(terms), terms.length) as tf.Scalar;
    });
  }

  dispose(): void {
    tf.dispose([...this.weights.values()]);
    this.weights.clear();
  }
}

/**
 * LPIPS normalize_tensor: x / (sqrt(sum_c x^2) + 1e-10). A tiny 1e-20 inside the sqrt keeps the gradient
 * finite where every channel is 0 (dead ReLUs), which would otherwise give 0 * inf = NaN.
 */
function unitNormalize(x: tf.Tensor4D): tf.Tensor4D {
  return tf.div(x, tf.add(tf.sqrt(tf.add(tf.sum(tf.square(x), 3, true), 1e-20)), 1e-10));
}
