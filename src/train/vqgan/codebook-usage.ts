/**
 * Codebook bookkeeping for VQGAN training: when each code was last chosen, usage over a window of steps,
 * batch perplexity, and dead-code restarts (codes unused for `restartAfterSteps` are set to encoder outputs
 * of the current batch, picked by a PRNG seeded from (seed, step) so a resumed run makes the same picks).
 */
import * as tf from '@tensorflow/tfjs';
import { readData } from '../../runtime/read.ts';
import { SeededRandom, deriveSeed } from '../data/random.ts';

export class CodebookUsage {
  /** Step at which each code was last chosen (or restarted, or tracking began). */
  readonly lastUsed: Int32Array;

  constructor(
    readonly numCodes: number,
    startStep = 0,
  ) {
    this.lastUsed = new Int32Array(numCodes).fill(startStep);
  }

  /** Records a step's token ids; returns the batch perplexity exp(H(code frequencies)). */
  record(ids: ArrayLike<number>, step: number): number {
    return this.recordCounts(codeCounts(ids, this.numCodes), step);
  }

  /** Records a step's count of each code (data parallel: the sum of every rank's codeCounts); returns the perplexity. */
  recordCounts(counts: Float64Array, step: number): number {
    if (counts.length !== this.numCodes)
      throw new Error(`codebook usage: ${counts.length} counts for ${this.numCodes} codes`);
    let total = 0;
    for (const c of counts) total += c;
    let h = 0;
    counts.forEach((c, id) => {
      if (c > 0) {
        this.lastUsed[id] = step;
        const p = c / total;
        h -= p * Math.log(p);
      }
    });
    return Math.exp(h);
  }

  /** Fraction of codes chosen within the last `window` steps up to `step` (inclusive). */
  usage(step: number, window: number): number {
    let n = 0;
    for (const s of this.lastUsed) if (step - s < window) n++;
    return n / this.numCodes;
  }

  /** Codes not chosen for at least `after` steps as of `step`. */
  dead(step: number, after: number): number[] {
    const out: number[] = [];
    this.lastUsed.forEach((s, i) => {
      if (step - s >= after) out.push(i);
    });
    return out;
  }

  restore(values: ArrayLike<number>): void {
    if (values.length !== this.numCodes)
      throw new Error(`codebook usage state has ${values.length} entries, the codebook has ${this.numCodes} codes`);
    this.lastUsed.set(Array.from(values));
  }
}

/** How often each of `numCodes` codes occurs in `ids`. */
export function codeCounts(ids: ArrayLike<number>, numCodes: number): Float64Array {
  const counts = new Float64Array(numCodes);
  for (let i = 0; i < ids.length; i++) counts[ids[i]]++;
  return counts;
}

/**
 * Sets rows `codes` of `codebook` [K, D] to rows of `latents` [N, D] drawn with replacement by a PRNG seeded
 * from (seed, step). Other rows are untouched. Returns the chosen latent row for each restarted code.
 */
export async function restartCodes(
  codebook: tf.Variable,
  latents: tf.Tensor2D,
  codes: number[],
  seed: number,
  step: number,
): Promise<number[]> {
  if (!codes.length) return [];
  const [k, d] = codebook.shape;
  if (latents.shape[1] !== d)
    throw new Error(`restartCodes: latents have ${latents.shape[1]} channels, codes have ${d}`);
  const rng = new SeededRandom(deriveSeed(seed, 41, step));
  const n = latents.shape[0];
  const picks = codes.map(() => rng.below(n));
  const src = await readData<'float32'>(latents);
  const table = Float32Array.from(await readData<'float32'>(codebook));
  codes.forEach((c, j) => {
    if (!Number.isInteger(c) || c < 0 || c >= k) throw new Error(`restartCodes: code ${c} is out of range [0, ${k})`);
    table.set(src.subarray(picks[j] * d, picks[j] * d + d), c * d);
  });
  const updated = tf.tensor2d(table, [k, d]);
  codebook.assign(updated);
  updated.dispose();
  return picks;
}
