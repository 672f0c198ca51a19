// Mask schedules of open-muse (muse/sampling.py): map t in [0, 1] to the fraction of image tokens masked.
// Training draws t ~ U[0, 1) per image and masks round(L * schedule(t)) tokens; sampling step s of T keeps
// floor(L * schedule((s + 1) / T)) tokens masked. Values are computed with float32 rounding at each step,
// as PyTorch does on float32 tensors, so integer counts match the reference exactly (e.g. the unclamped
// cosine is -4.37e-8 at t = 1, which makes the last sampling step's raw count -1, not 0).
//
// `arccos` is the MUSE paper's name for the cosine schedule: drawing t ~ U[0, 1) and masking a fraction
// r = cos(pi t / 2) is the same as drawing r from the truncated arccos density p(r) = (2 / pi) (1 - r^2)^(-1/2).
// It is accepted here as an alias of `cosine`.

const f32 = Math.fround;
const CLIP_MIN = 1e-6;

const clamp = (x: number, lo: number, hi: number) => f32(Math.min(Math.max(x, lo), hi));

export type MaskSchedule = (t: number) => number;

/** cos(t * pi / 2), not clamped (open-muse `cosine_schedule`). */
export function cosineSchedule(t: number): number {
  const angle = f32(f32(f32(t) * f32(Math.PI)) * 0.5);
  return f32(Math.cos(angle));
}

/** clamp(1 - t, 1e-6, 1). */
export function linearSchedule(t: number): number {
  return clamp(f32(1 - f32(t)), CLIP_MIN, 1);
}

/** clamp(1 - t^exponent, 1e-6, 1) (open-muse `pow`, named e.g. `pow2`, `pow0.5`). */
export function powSchedule(t: number, exponent: number): number {
  return clamp(f32(1 - f32(Math.pow(f32(t), exponent))), CLIP_MIN, 1);
}

export interface SigmoidParams {
  start?: number;
  end?: number;
  tau?: number;
  clipMin?: number;
}

const sigmoid = (x: number) => f32(1 / (1 + Math.exp(-x)));

/** Normalised falling sigmoid between `start` and `end` (open-muse `sigmoid_schedule`, defaults -3, 3, 1). */
export function sigmoidSchedule(
  t: number,
  { start = -3, end = 3, tau = 1, clipMin = CLIP_MIN }: SigmoidParams = {},
): number {
  const vStart = sigmoid(f32(start / tau));
  const vEnd = sigmoid(f32(end / tau));
  const x = f32(f32(f32(f32(t) * f32(end - start)) + start) / tau);
  const out = sigmoid(x);
  return clamp(f32(f32(vEnd - out) / f32(vEnd - vStart)), clipMin, 1);
}

export const MASK_SCHEDULE_NAMES = ['cosine', 'arccos', 'linear', 'pow<k>', 'sigmoid'] as const;

/** Looks a schedule up by its open-muse name (`get_mask_chedule`), plus `arccos` = cosine. */
export function maskSchedule(name: string, params: SigmoidParams = {}): MaskSchedule {
  if (name === 'cosine' || name === 'arccos') return cosineSchedule;
  if (name === 'linear') return linearSchedule;
  if (name === 'sigmoid') return (t) => sigmoidSchedule(t, params);
  if (name.startsWith('pow')) {
    const exponent = Number(name.slice(3));
    if (name.length > 3 && Number.isFinite(exponent)) return (t) => powSchedule(t, exponent);
  }
  throw new Error(`unknown mask schedule '${name}' (expected one of ${MASK_SCHEDULE_NAMES.join(', ')})`);
}

/** Round half to even, like torch.round. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Training: how many of `seqLen` tokens to mask for a draw t (train_muse.py:
 * `(seq_len * schedule(t).clip(min_masking_rate)).round().clamp(min=1)`).
 */
export function numTokensToMask(
  seqLen: number,
  t: number,
  schedule: MaskSchedule = cosineSchedule,
  minMaskingRate = 0,
): number {
  const prob = f32(Math.max(schedule(t), minMaskingRate));
  return Math.max(1, roundHalfEven(f32(seqLen * prob)));
}

/**
 * Sampling (MaskGitTransformer.generate2): tokens left masked after step `step` of `steps`, before the caller
 * clamps it to [1, unknown - 1]: floor(seq_len * schedule((step + 1) / steps)).
 */
export function maskLenAtStep(
  seqLen: number,
  step: number,
  steps: number,
  schedule: MaskSchedule = cosineSchedule,
): number {
  const ratio = f32((step + 1) / steps);
  return Math.floor(f32(seqLen * schedule(ratio)));
}
