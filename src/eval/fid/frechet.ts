// Fréchet distance between two Gaussians fitted to feature sets (the FID):
//   d² = |mu1 - mu2|² + tr(S1) + tr(S2) - 2·tr(sqrtm(S1·S2))
// pytorch-fid takes scipy.linalg.sqrtm(S1·S2) (a Schur-based square root of the non-symmetric product) and its
// real part. For symmetric positive semi-definite S1, S2 the product is similar to the symmetric
// R = S1^½·S2·S1^½, so tr(sqrtm(S1·S2)) = Σ √λ(R); computed here with two symmetric eigendecompositions in
// float64 (ml-matrix). Eigenvalues that rounding makes slightly negative count as 0 (scipy makes them tiny
// imaginary parts, which pytorch-fid drops).
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { FeatureStats } from './statistics.ts';

/** C = A·B for row-major square float64 matrices of side n. */
function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ci = i * n;
    for (let k = 0; k < n; k++) {
      const aik = a[ci + k];
      if (aik === 0) continue;
      const bk = k * n;
      for (let j = 0; j < n; j++) c[ci + j] += aik * b[bk + j];
    }
  }
  return c;
}

function toMatrix(a: Float64Array, n: number): Matrix {
  const m = new Matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m.set(i, j, a[i * n + j]);
  return m;
}

/** Eigenvalues and eigenvectors (columns of V, row-major) of a symmetric matrix. */
function symmetricEigen(a: Float64Array, n: number): { values: number[]; vectors: Float64Array } {
  const evd = new EigenvalueDecomposition(toMatrix(a, n), { assumeSymmetric: true });
  const v = evd.eigenvectorMatrix;
  const vectors = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vectors[i * n + j] = v.get(i, j);
  return { values: evd.realEigenvalues, vectors };
}

/** Symmetric square root V·diag(√max(λ,0))·Vᵀ of a symmetric PSD matrix. */
export function symmetricSqrt(a: Float64Array, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, n);
  const out = new Float64Array(n * n);
  const s = values.map((l) => Math.sqrt(Math.max(l, 0)));
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const w = vectors[i * n + k] * s[k];
      if (w === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += w * vectors[j * n + k];
    }
  }
  return out;
}

/** tr(sqrtm(A·B)) for symmetric PSD A, B of side n. */
export function traceSqrtProduct(a: Float64Array, b: Float64Array, n: number): number {
  const ra = symmetricSqrt(a, n);
  const r = matmul(matmul(ra, b, n), ra, n);
  // Symmetrise away rounding so the symmetric solver sees a symmetric matrix.
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
    const v = (r[i * n + j] + r[j * n + i]) / 2;
    r[i * n + j] = v;
    r[j * n + i] = v;
  }
  let t = 0;
  for (const l of symmetricEigen(r, n).values) t += Math.sqrt(Math.max(l, 0));
  return t;
}

export interface FrechetParts {
  fid: number;
  /** |mu1 - mu2|² */
  meanTerm: number;
  traceSigma1: number;
  traceSigma2: number;
  /** tr(sqrtm(S1·S2)) */
  traceCovmean: number;
}

/** The Fréchet distance between two sets of statistics (same dimension). */
export function frechetDistance(s1: FeatureStats, s2: FeatureStats): FrechetParts {
  if (s1.dim !== s2.dim) throw new Error(`feature statistics of different dimensions: ${s1.dim} and ${s2.dim}`);
  const n = s1.dim;
  let meanTerm = 0;
  for (let i = 0; i < n; i++) meanTerm += (s1.mu[i] - s2.mu[i]) ** 2;
  let traceSigma1 = 0;
  let traceSigma2 = 0;
  for (let i = 0; i < n; i++) {
    traceSigma1 += s1.sigma[i * n + i];
    traceSigma2 += s2.sigma[i * n + i];
  }
  const traceCovmean = traceSqrtProduct(s1.sigma, s2.sigma, n);
  return { fid: meanTerm + traceSigma1 + traceSigma2 - 2 * traceCovmean, meanTerm, traceSigma1, traceSigma2, traceCovmean };
}
