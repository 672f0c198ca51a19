// Fréchet distance between two Gaussians fitted to feature sets (the FID):
//   d² = |mu1 - mu2|² + tr(S1) + tr(S2) - 2·tr(sqrtm(S1·S2))
// pytorch-fid takes scipy.linalg.sqrtm(S1·S2) (a Schur-based square root of the non-symmetric product) and its
// real part. For symmetric positive semi-definite S1, S2 the eigenvalues of S1·S2 are those of a symmetric PSD
// matrix (Lᵀ·S2·L with S1 = L·Lᵀ), so tr(sqrtm(S1·S2)) = Σ √λ; computed in float64 with a pivoted Cholesky
// (cheap when S1 has low rank, as with fewer images than feature dimensions) and one symmetric
// eigendecomposition (ml-matrix). Eigenvalues that rounding makes slightly negative count as 0 (scipy makes
// them tiny imaginary parts, which pytorch-fid drops).
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { FeatureStats } from './statistics.ts';

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

/**
 * Pivoted (incomplete) Cholesky of a symmetric PSD matrix: A ≈ L·Lᵀ with L [n, r] (row-major), stopping when
 * the largest remaining diagonal falls below `tol` × the largest diagonal. r is the numerical rank, so a
 * covariance of N < n samples costs O(n·N²) instead of a full decomposition.
 */
export function pivotedCholesky(a: Float64Array, n: number, tol = 1e-13): { l: Float64Array; rank: number } {
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = a[i * n + i];
  const maxDiag = d.reduce((m, v) => Math.max(m, v), 0);
  const cols: Float64Array[] = [];
  const used = new Uint8Array(n);
  while (cols.length < n) {
    let p = -1;
    for (let i = 0; i < n; i++) if (!used[i] && (p < 0 || d[i] > d[p])) p = i;
    if (p < 0 || !(d[p] > tol * maxDiag) || d[p] <= 0) break;
    used[p] = 1;
    const piv = Math.sqrt(d[p]);
    const col = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (used[i] && i !== p) continue;
      let v = a[i * n + p];
      for (const c of cols) v -= c[i] * c[p];
      col[i] = v / piv;
    }
    col[p] = piv;
    for (let i = 0; i < n; i++) if (!used[i]) d[i] -= col[i] * col[i];
    d[p] = 0;
    cols.push(col);
  }
  const r = cols.length;
  const l = new Float64Array(n * r);
  cols.forEach((c, k) => {
    for (let i = 0; i < n; i++) l[i * r + k] = c[i];
  });
  return { l, rank: r };
}

/**
 * tr(sqrtm(A·B)) for symmetric PSD A, B of side n: with A = L·Lᵀ (pivoted Cholesky, rank r), A·B has the same
 * non-zero eigenvalues as the symmetric PSD Lᵀ·B·L [r, r], so the trace is Σ √λ(Lᵀ·B·L).
 */
export function traceSqrtProduct(a: Float64Array, b: Float64Array, n: number): number {
  const { l, rank: r } = pivotedCholesky(a, n);
  if (r === 0) return 0;
  // BL = B·L [n, r]
  const bl = new Float64Array(n * r);
  for (let i = 0; i < n; i++) {
    const bi = i * n;
    const out = i * r;
    for (let k = 0; k < n; k++) {
      const v = b[bi + k];
      if (v === 0) continue;
      const lk = k * r;
      for (let j = 0; j < r; j++) bl[out + j] += v * l[lk + j];
    }
  }
  // R = Lᵀ·BL [r, r], symmetrised against rounding.
  const m = new Float64Array(r * r);
  for (let k = 0; k < n; k++) {
    const lk = k * r;
    for (let i = 0; i < r; i++) {
      const v = l[lk + i];
      if (v === 0) continue;
      const row = i * r;
      for (let j = 0; j < r; j++) m[row + j] += v * bl[lk + j];
    }
  }
  for (let i = 0; i < r; i++)
    for (let j = i + 1; j < r; j++) {
      const v = (m[i * r + j] + m[j * r + i]) / 2;
      m[i * r + j] = v;
      m[j * r + i] = v;
    }
  let t = 0;
  for (const lambda of symmetricEigen(m, r).values) t += Math.sqrt(Math.max(lambda, 0));
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
  // tr sqrtm(S1·S2) = tr sqrtm(S2·S1): factor the set with fewer samples (lower rank, smaller eigenproblem).
  const traceCovmean =
    s2.n && s2.n < s1.n ? traceSqrtProduct(s2.sigma, s1.sigma, n) : traceSqrtProduct(s1.sigma, s2.sigma, n);
  return {
    fid: meanTerm + traceSigma1 + traceSigma2 - 2 * traceCovmean,
    meanTerm,
    traceSigma1,
    traceSigma2,
    traceCovmean,
  };
}
