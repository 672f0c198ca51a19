// Learning-rate schedules as diffusers' get_scheduler defines them (LambdaLR factor times the base lr),
// with an optional floor `minLr` for the decaying schedules.

export type LrScheduleName = 'constant' | 'cosine' | 'linear';
export const LR_SCHEDULES: readonly LrScheduleName[] = ['constant', 'cosine', 'linear'];

export interface LrScheduleOptions {
  lr: number;
  warmupSteps: number;
  schedule: LrScheduleName;
  maxSteps: number;
  /** Floor reached at maxSteps by 'cosine' and 'linear' (default 0; ignored by 'constant'). */
  minLr?: number;
  /**
   * 'cosine' / 'linear' decay only over the last `decaySteps` steps before maxSteps, holding lr until then
   * (warmup-stable-decay); 0 or absent: decay over everything after warmup.
   */
  decaySteps?: number;
}

/**
 * Learning rate for the update at optimization step `step` (0-based, as LambdaLR's last_epoch: the first
 * update uses step 0). Warmup: lr * step / max(1, warmupSteps) while step < warmupSteps (so the very first
 * update has lr 0, like diffusers). Then 'constant' keeps lr; 'cosine' follows 0.5 * (1 + cos(pi * progress))
 * (num_cycles 0.5) and 'linear' 1 - progress, with progress = (step - warmup) / max(1, maxSteps - warmup)
 * clamped to [0, 1], mapped onto [minLr, lr]. Past maxSteps the rate stays at minLr.
 */
export function learningRate(step: number, o: LrScheduleOptions): number {
  const minLr = o.minLr ?? 0;
  if (!Number.isInteger(step) || step < 0) throw new Error(`learningRate: step must be an integer >= 0, got ${step}`);
  if (!(Number.isFinite(o.lr) && o.lr >= 0))
    throw new Error(`learningRate: lr must be a finite number >= 0, got ${o.lr}`);
  if (!Number.isInteger(o.warmupSteps) || o.warmupSteps < 0)
    throw new Error(`learningRate: warmupSteps must be an integer >= 0, got ${o.warmupSteps}`);
  if (!Number.isInteger(o.maxSteps) || o.maxSteps < 0)
    throw new Error(`learningRate: maxSteps must be an integer >= 0, got ${o.maxSteps}`);
  if (!(Number.isFinite(minLr) && minLr >= 0 && minLr <= o.lr))
    throw new Error(`learningRate: minLr must be in [0, lr=${o.lr}], got ${minLr}`);
  if (!LR_SCHEDULES.includes(o.schedule)) {
    throw new Error(
      `learningRate: unknown schedule '${String(o.schedule)}' (expected one of ${LR_SCHEDULES.join(', ')})`,
    );
  }
  if (step < o.warmupSteps) return (o.lr * step) / Math.max(1, o.warmupSteps);
  if (o.schedule === 'constant') return o.lr;
  const decaySteps = o.decaySteps ?? 0;
  if (!Number.isInteger(decaySteps) || decaySteps < 0)
    throw new Error(`learningRate: decaySteps must be an integer >= 0, got ${decaySteps}`);
  const start = decaySteps ? Math.max(o.warmupSteps, o.maxSteps - decaySteps) : o.warmupSteps;
  if (step < start) return o.lr;
  const progress = Math.min(1, (step - start) / Math.max(1, o.maxSteps - start));
  const factor = o.schedule === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return minLr + (o.lr - minLr) * factor;
}
