// pytorch-fid's FID InceptionV3 on TensorFlow.js, NHWC, inference only: images in [0, 1] at 299×299 ->
// 2048-d pool features (block 3, the one FID uses). Weights load from a safetensors file in the PyTorch
// state_dict names (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_var`, ...); the 1008-class `fc`
// head and `num_batches_tracked` buffers in that file are ignored. Each BatchNorm (eval mode) is folded into
// its convolution once, after loading.
import * as tf from '@tensorflow/tfjs';
import { openCheckpoint } from '../safetensors.ts';
import { ParamStore } from '../layers/params.ts';
import {
  allConvs,
  blockConvs,
  BN_EPS,
  convTensors,
  FID_INCEPTION_BLOCKS,
  type Block,
  type ConvSpec,
} from './architecture.ts';
import { randomInceptionTensor } from './random-weights.ts';

interface Folded {
  /** [kh, kw, in, out] = conv weight · γ/√(var+eps) */
  kernel: tf.Tensor4D;
  /** β − mean·γ/√(var+eps) */
  bias: tf.Tensor1D;
}

export class FidInception {
  readonly params = new ParamStore();
  private folded = new Map<string, Folded>();

  /** `random: true` fills the deterministic random weights of random-weights.ts; otherwise zeros until loaded. */
  constructor(opts: { random?: boolean } = {}) {
    for (const c of allConvs()) {
      for (const [name, shape] of Object.entries(convTensors(c))) {
        this.params.add(name, shape, opts.random ? randomInceptionTensor(name, shape) : 'zeros');
      }
    }
    if (opts.random) this.fold();
  }

  /**
   * Loads pytorch-fid weights (e.g. `pt_inception-2015-12-05-6726825d.pth` converted to safetensors). Missing,
   * unexpected or wrong-shaped tensors are named in the error.
   */
  static async fromSafetensors(file: string): Promise<FidInception> {
    const model = new FidInception();
    const ckpt = await openCheckpoint(file).catch((err: Error) => {
      model.dispose();
      throw new Error(`${file}: cannot open Inception weights (${err.message})`);
    });
    try {
      await model.params.load(ckpt, { ignore: (n) => n.startsWith('fc.') || n.endsWith('num_batches_tracked') });
      model.fold();
      return model;
    } catch (err) {
      model.dispose();
      throw new Error(`${file}: not pytorch-fid FID Inception weights: ${(err as Error).message}`);
    } finally {
      await ckpt.close();
    }
  }

  private fold(): void {
    for (const f of this.folded.values()) {
      f.kernel.dispose();
      f.bias.dispose();
    }
    this.folded.clear();
    for (const c of allConvs()) {
      const p = (s: string) => this.params.get(`${c.name}.${s}`);
      const folded = tf.tidy(() => {
        const scale = tf.div(p('bn.weight'), tf.sqrt(tf.add(p('bn.running_var'), BN_EPS)));
        const kernel = tf.mul(tf.transpose(p('conv.weight'), [2, 3, 1, 0]), scale) as tf.Tensor4D;
        const bias = tf.sub(p('bn.bias'), tf.mul(p('bn.running_mean'), scale)) as tf.Tensor1D;
        return { kernel, bias };
      });
      this.folded.set(c.name, folded);
    }
  }

  private conv(x: tf.Tensor4D, c: ConvSpec): tf.Tensor4D {
    const f = this.folded.get(c.name)!;
    const padded =
      c.padH || c.padW
        ? tf.pad(x, [
            [0, 0],
            [c.padH, c.padH],
            [c.padW, c.padW],
            [0, 0],
          ])
        : x;
    return tf.relu(tf.add(tf.conv2d(padded, f.kernel, c.stride, 'valid'), f.bias)) as tf.Tensor4D;
  }

  private block(x: tf.Tensor4D, b: Block): tf.Tensor4D {
    const cv = blockConvs(b);
    const run = (...names: string[]) => names.reduce((h, n) => this.conv(h, cv[n]), x);
    switch (b.kind) {
      case 'conv':
        return this.conv(x, b.conv);
      case 'maxpool':
        return tf.maxPool(x, 3, 2, 'valid');
      case 'A':
        return tf.concat(
          [
            run('branch1x1'),
            run('branch5x5_1', 'branch5x5_2'),
            run('branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'),
            this.conv(avgPoolExcludePad(x), cv.branch_pool),
          ],
          3,
        );
      case 'B':
        return tf.concat(
          [run('branch3x3'), run('branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'), tf.maxPool(x, 3, 2, 'valid')],
          3,
        );
      case 'C':
        return tf.concat(
          [
            run('branch1x1'),
            run('branch7x7_1', 'branch7x7_2', 'branch7x7_3'),
            run('branch7x7dbl_1', 'branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5'),
            this.conv(avgPoolExcludePad(x), cv.branch_pool),
          ],
          3,
        );
      case 'D':
        return tf.concat(
          [
            run('branch3x3_1', 'branch3x3_2'),
            run('branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3', 'branch7x7x3_4'),
            tf.maxPool(x, 3, 2, 'valid'),
          ],
          3,
        );
      case 'E': {
        const b3 = run('branch3x3_1');
        const d3 = run('branch3x3dbl_1', 'branch3x3dbl_2');
        const pooled = b.pool === 'avg' ? avgPoolExcludePad(x) : tf.maxPool(x, 3, 1, 'same');
        return tf.concat(
          [
            run('branch1x1'),
            this.conv(b3, cv.branch3x3_2a),
            this.conv(b3, cv.branch3x3_2b),
            this.conv(d3, cv.branch3x3dbl_3a),
            this.conv(d3, cv.branch3x3dbl_3b),
            this.conv(pooled, cv.branch_pool),
          ],
          3,
        );
      }
    }
  }

  /**
   * Pool features [B, 2048] of images [B, H, W, 3] with values in [0, 1] (already resized: pytorch-fid feeds
   * 299×299; other sizes ≥ 75 run, as the network is fully convolutional).
   */
  features(images: tf.Tensor4D): tf.Tensor2D {
    if (images.rank !== 4 || images.shape[3] !== 3)
      throw new Error(`Inception input must be [B, H, W, 3], got [${images.shape}]`);
    return tf.tidy(() => {
      let x = tf.sub(tf.mul(images, 2), 1) as tf.Tensor4D;
      for (const b of FID_INCEPTION_BLOCKS) x = this.block(x, b);
      return tf.mean(x, [1, 2]) as tf.Tensor2D;
    });
  }

  dispose(): void {
    for (const f of this.folded.values()) {
      f.kernel.dispose();
      f.bias.dispose();
    }
    this.folded.clear();
    this.params.dispose();
  }
}

/**
 * 3×3 average pool, stride 1, padding 1, dividing by the number of real (unpadded) pixels: PyTorch's
 * count_include_pad=False. Written as a zero-padded sum over the window divided by a count map, so it does not
 * depend on how a backend's own 'same' average pool treats the border.
 */
export function avgPoolExcludePad(x: tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  const sum = tf.mul(
    tf.avgPool(
      tf.pad(x, [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ]),
      3,
      1,
      'valid',
    ),
    9,
  );
  const counts = new Float32Array(h * w);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++)
      counts[i * w + j] =
        (Math.min(i + 1, h - 1) - Math.max(i - 1, 0) + 1) * (Math.min(j + 1, w - 1) - Math.max(j - 1, 0) + 1);
  }
  return tf.div(sum, tf.tensor4d(counts, [1, h, w, 1])) as tf.Tensor4D;
}
