// Feature statistics of an image set, as pytorch-fid computes them: the mean and the unbiased covariance
// (np.cov, rowvar=False, divisor N-1) of the pool features, both in float64.

export interface FeatureStats {
  /** Number of feature vectors the statistics were computed from. */
  n: number;
  /** Feature dimension (2048 for the FID Inception). */
  dim: number;
  /** [dim] mean. */
  mu: Float64Array;
  /** [dim, dim] covariance, row-major. */
  sigma: Float64Array;
}

/**
 * Mean and covariance of `n` feature vectors of length `dim` stored row-major in `features`. At least 2
 * vectors are needed (the covariance divides by N-1): FID is undefined for fewer, so they are refused.
 */
export function featureStatistics(
  features: Float32Array | Float64Array,
  n: number,
  dim: number,
  what = 'feature set',
): FeatureStats {
  if (!Number.isInteger(n) || !Number.isInteger(dim) || dim < 1) throw new Error(`${what}: bad shape [${n}, ${dim}]`);
  if (features.length !== n * dim) throw new Error(`${what}: ${features.length} values for ${n} vectors of ${dim}`);
  if (n < 2)
    throw new Error(
      `${what}: ${n} image${n === 1 ? '' : 's'}; FID needs at least 2 (the covariance is undefined for fewer)`,
    );
  const mu = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const row = i * dim;
    for (let j = 0; j < dim; j++) mu[j] += features[row + j];
  }
  for (let j = 0; j < dim; j++) mu[j] /= n;
  // Centred features transposed (one row per dimension), so each covariance entry is a contiguous dot product;
  // rank-1 updates of the whole matrix per sample would stream dim² values through memory n times.
  const xt = new Float64Array(dim * n);
  for (let i = 0; i < n; i++) {
    const row = i * dim;
    for (let j = 0; j < dim; j++) {
      const v = features[row + j];
      if (!Number.isFinite(v)) throw new Error(`${what}: vector ${i} has a non-finite value at ${j}`);
      xt[j * n + i] = v - mu[j];
    }
  }
  const sigma = new Float64Array(dim * dim);
  const div = n - 1;
  for (let a = 0; a < dim; a++) {
    const ra = a * n;
    for (let b = a; b < dim; b++) {
      const rb = b * n;
      let s0 = 0;
      let s1 = 0;
      let k = 0;
      for (; k + 1 < n; k += 2) {
        s0 += xt[ra + k] * xt[rb + k];
        s1 += xt[ra + k + 1] * xt[rb + k + 1];
      }
      if (k < n) s0 += xt[ra + k] * xt[rb + k];
      const v = (s0 + s1) / div;
      sigma[a * dim + b] = v;
      sigma[b * dim + a] = v;
    }
  }
  return { n, dim, mu, sigma };
}
