/**
 * Data-driven codebook initialisation: k-means++ seeding on encoder outputs, then a few Lloyd iterations.
 *
 * Why: the default codebook (uniform +-1/K, as taming) sits near the origin while encoder outputs do not, so at
 * the start nearly every latent maps to the same few codes and the commitment loss then pulls the encoder onto
 * them (collapse; on the sample shapes this loses the shape colours). Codes drawn from the latents of real
 * images start spread over what the encoder produces. Deterministic for (seed, latents).
 */
import * as tf from '@tensorflow/tfjs';
import { readData } from '../../runtime/read.ts';
import { SeededRandom, deriveSeed } from '../data/random.ts';

export interface KMeansResult {
  /** Centres [K * D], row-major. */
  centres: Float32Array;
  /** Latent rows picked by the k-means++ seeding, one per code. */
  seeds: number[];
  /** Mean squared distance from each latent to its nearest centre, after the last iteration. */
  inertia: number;
}

/**
 * k-means++ on rows of `data` [n, d]: K seeded picks (first uniform, then proportional to the squared distance to
 * the nearest pick so far), then `iterations` Lloyd steps (a centre with no members keeps its position).
 * When n < k, or the data has fewer than k distinct rows, the remaining picks repeat rows (distance 0 rows
 * only get picked once every row is already a centre).
 */
export function kmeansPlusPlus(
  data: Float32Array,
  n: number,
  d: number,
  k: number,
  seed: number,
  iterations = 5,
): KMeansResult {
  if (!Number.isInteger(n) || n < 1 || data.length !== n * d)
    throw new Error(`kmeansPlusPlus: data has ${data.length} values, expected n*d = ${n}*${d} with n >= 1`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`kmeansPlusPlus: k must be an integer >= 1, got ${k}`);
  if (!Number.isInteger(iterations) || iterations < 0)
    throw new Error(`kmeansPlusPlus: iterations must be an integer >= 0, got ${iterations}`);
  const rng = new SeededRandom(deriveSeed(seed, 43, 0));
  const dist2 = (i: number, c: Float32Array, j: number) => {
    let s = 0;
    for (let t = 0; t < d; t++) {
      const e = data[i * d + t] - c[j * d + t];
      s += e * e;
    }
    return s;
  };
  const centres = new Float32Array(k * d);
  const seeds: number[] = [];
  const nearest = new Float64Array(n).fill(Infinity);
  for (let j = 0; j < k; j++) {
    let pick: number;
    let total = 0;
    for (let i = 0; i < n; i++) total += nearest[i];
    if (j === 0 || !(total > 0) || !Number.isFinite(total)) {
      pick = rng.below(n);
    } else {
      let r = rng.next() * total;
      pick = n - 1;
      for (let i = 0; i < n; i++) {
        r -= nearest[i];
        if (r < 0) {
          pick = i;
          break;
        }
      }
    }
    seeds.push(pick);
    centres.set(data.subarray(pick * d, pick * d + d), j * d);
    for (let i = 0; i < n; i++) nearest[i] = Math.min(nearest[i], dist2(i, centres, j));
  }
  const assign = new Int32Array(n);
  const assignAll = () => {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bestD = Infinity;
      for (let j = 0; j < k; j++) {
        const e = dist2(i, centres, j);
        if (e < bestD) {
          bestD = e;
          best = j;
        }
      }
      assign[i] = best;
      sum += bestD;
    }
    return sum / n;
  };
  let inertia = assignAll();
  for (let it = 0; it < iterations; it++) {
    const sums = new Float64Array(k * d);
    const counts = new Int32Array(k);
    for (let i = 0; i < n; i++) {
      counts[assign[i]]++;
      for (let t = 0; t < d; t++) sums[assign[i] * d + t] += data[i * d + t];
    }
    for (let j = 0; j < k; j++) {
      if (!counts[j]) continue;
      for (let t = 0; t < d; t++) centres[j * d + t] = sums[j * d + t] / counts[j];
    }
    inertia = assignAll();
  }
  return { centres, seeds, inertia };
}

/** Sets every row of `codebook` [K, D] to the k-means++ centres of `latents` [N, D]; returns the k-means result. */
export async function initCodebookFromLatents(
  codebook: tf.Variable,
  latents: tf.Tensor2D,
  seed: number,
  iterations = 5,
): Promise<KMeansResult> {
  const [k, d] = codebook.shape;
  if (latents.rank !== 2 || latents.shape[1] !== d)
    throw new Error(`initCodebookFromLatents: latents must be [N, ${d}], got [${latents.shape}]`);
  const res = kmeansPlusPlus(await readData<'float32'>(latents), latents.shape[0], d, k, seed, iterations);
  const t = tf.tensor2d(res.centres, [k, d]);
  codebook.assign(t);
  t.dispose();
  return res;
}
