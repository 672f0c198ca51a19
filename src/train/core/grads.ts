// Gradient utilities: global L2 norm, PyTorch-style clip_grad_norm_, and accumulation over micro-batches.
import * as tf from '@tensorflow/tfjs';
import { readData } from '../../runtime/read.ts';
import type { Communicator } from '../../runtime/mpi.ts';

/** L2 norm over all gradients together (sqrt of the sum of every element squared); the sum across tensors is in float64. */
export async function globalNorm(grads: Map<string, tf.Tensor>): Promise<number> {
  if (grads.size === 0) return 0;
  const sums = tf.tidy(() => tf.stack([...grads.values()].map((g) => tf.sum(tf.square(tf.cast(g, 'float32'))))));
  const values = await readData<'float32'>(sums, { dispose: true });
  let total = 0;
  for (const v of values) total += v;
  return Math.sqrt(total);
}

/**
 * torch.nn.utils.clip_grad_norm_: with norm = globalNorm(grads), grads are scaled by
 * maxNorm / (norm + 1e-6) when that is < 1. Returns NEW tensors (clones when no scaling is needed, also
 * when maxNorm is null or the norm is not finite: the caller should then skip the update); the caller
 * disposes both the inputs and the outputs.
 */
export async function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number | null,
): Promise<{ grads: Map<string, tf.Tensor>; norm: number }> {
  if (maxNorm !== null && !(Number.isFinite(maxNorm) && maxNorm > 0)) {
    throw new Error(`clipByGlobalNorm: maxNorm must be a finite number > 0 or null, got ${maxNorm}`);
  }
  const norm = await globalNorm(grads);
  const scale = maxNorm === null || !Number.isFinite(norm) ? 1 : maxNorm / (norm + 1e-6);
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, scale < 1 ? tf.tidy(() => tf.mul(g, scale)) : tf.clone(g));
  return { grads: out, norm };
}

/** Sums gradients of several micro-batches; take() gives the mean (a param missing from a batch counts as zero). */
export class GradAccumulator {
  private sums = new Map<string, tf.Tensor>();
  private n = 0;

  /**
   * Takes ownership of the tensors (they are disposed here). `weight` scales them first (a rank's share of a
   * micro-batch split across data-parallel ranks).
   */
  add(grads: Map<string, tf.Tensor>, weight = 1): void {
    for (const [name, g] of grads) {
      const prev = this.sums.get(name);
      if (prev && prev.shape.join(',') !== g.shape.join(',')) {
        for (const t of grads.values()) t.dispose();
        throw new Error(
          `GradAccumulator.add: gradient for ${name} has shape [${g.shape}], earlier ones [${prev.shape}]`,
        );
      }
    }
    for (let [name, g] of grads) {
      if (weight !== 1) {
        const scaled = tf.tidy(() => tf.mul(g, weight));
        g.dispose();
        g = scaled;
      }
      const prev = this.sums.get(name);
      if (prev) {
        this.sums.set(name, tf.add(prev, g));
        prev.dispose();
        g.dispose();
      } else {
        this.sums.set(name, g);
      }
    }
    this.n++;
  }

  /** Number of add() calls since the last take(). */
  get count(): number {
    return this.n;
  }

  /** The weighted sum of the added batches, for weights that already sum to 1 (caller owns the tensors); resets the accumulator. */
  takeSum(): Map<string, tf.Tensor> {
    if (this.n === 0) throw new Error('GradAccumulator.takeSum: nothing was added');
    const out = this.sums;
    this.sums = new Map();
    this.n = 0;
    return out;
  }

  /** The mean over the added batches (caller owns the tensors); resets the accumulator. */
  take(): Map<string, tf.Tensor> {
    if (this.n === 0) throw new Error('GradAccumulator.take: nothing was added');
    const n = this.n;
    const out = new Map<string, tf.Tensor>();
    for (const [name, s] of this.sums) {
      out.set(name, n === 1 ? s : tf.tidy(() => tf.div(s, n)));
      if (n !== 1) s.dispose();
    }
    this.sums = new Map();
    this.n = 0;
    return out;
  }

  dispose(): void {
    for (const s of this.sums.values()) s.dispose();
    this.sums = new Map();
    this.n = 0;
  }
}

/** Default size of one all-reduce bucket: 25 MB of float32 gradients (PyTorch DDP's default bucket size). */
export const ALLREDUCE_BUCKET_BYTES = 25 * 1024 * 1024;

/**
 * Data parallelism: the element-wise sum over all ranks of `grads` (and of `extra` numbers, e.g. a loss, carried in
 * the last call) through float32 host buffers, so any backend works. The tensors go in order into buckets of about
 * `bucketBytes` (a tensor larger than that is a bucket alone), one MPI_Allreduce each: the device-side concatenation
 * and the host copy stay one bucket large instead of the whole gradient. Every rank must pass gradients of the same
 * names and shapes in the same order. Returns NEW tensors in the same order (the caller disposes both); `ms` is the
 * time inside MPI_Allreduce, summed over the buckets.
 */
export async function allreduceGrads(
  grads: Map<string, tf.Tensor>,
  comm: Communicator,
  extra: number[] = [],
  bucketBytes = ALLREDUCE_BUCKET_BYTES,
): Promise<{ grads: Map<string, tf.Tensor>; extra: number[]; ms: number; buckets: number }> {
  const names = [...grads.keys()];
  const buckets: string[][] = [];
  let bytes = Infinity;
  for (const n of names) {
    const size = grads.get(n)!.size * 4;
    if (bytes + size > bucketBytes) {
      buckets.push([]);
      bytes = 0;
    }
    buckets[buckets.length - 1].push(n);
    bytes += size;
  }
  if (!buckets.length) buckets.push([]);
  const out = new Map<string, tf.Tensor>();
  let ms = 0;
  let sums: number[] = [];
  try {
    for (const [b, bucket] of buckets.entries()) {
      const last = b === buckets.length - 1;
      const sizes = bucket.map((n) => grads.get(n)!.size);
      const total = sizes.reduce((x, y) => x + y, 0);
      const buf = new Float32Array(total + (last ? extra.length : 0));
      if (bucket.length) {
        const flat = tf.tidy(() => tf.concat(bucket.map((n) => tf.reshape(tf.cast(grads.get(n)!, 'float32'), [-1]))));
        buf.set(await readData<'float32'>(flat, { dispose: true }));
      }
      if (last) buf.set(extra, total);
      const t0 = performance.now();
      comm.allreduceSum(buf);
      ms += performance.now() - t0;
      let offset = 0;
      bucket.forEach((n, i) => {
        out.set(n, tf.tensor(buf.subarray(offset, offset + sizes[i]), grads.get(n)!.shape, 'float32'));
        offset += sizes[i];
      });
      if (last) sums = Array.from(buf.subarray(total));
    }
  } catch (err) {
    tf.dispose([...out.values()]);
    throw err;
  }
  return { grads: out, extra: sums, ms, buckets: buckets.length };
}
