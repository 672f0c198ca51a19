/** The config's optimizer, LR-schedule and EMA sections as the training core's options (both stages use these). */
import { learningRate, type AdamWOptions, type EmaOptions } from '../core/index.ts';
import type { TrainConfig } from './schema.ts';

/** Learning rate of optimisation step `step` (0-based). */
export function configLearningRate(cfg: TrainConfig, step: number): number {
  const s = cfg.lr_scheduler;
  return learningRate(step, {
    lr: cfg.optimizer.lr,
    warmupSteps: s.warmup_steps,
    schedule: s.schedule,
    maxSteps: cfg.training.max_steps,
    minLr: s.min_lr,
    decaySteps: s.decay_steps,
  });
}

/** EMA options, or undefined when ema.enabled is false. */
export function configEmaOptions(cfg: TrainConfig): EmaOptions | undefined {
  const e = cfg.ema;
  if (!e.enabled) return undefined;
  return {
    decay: e.decay,
    minDecay: e.min_decay,
    updateAfterStep: e.update_after_step,
    updateEvery: e.update_every,
    useWarmup: e.use_warmup,
    invGamma: e.inv_gamma,
    power: e.power,
  };
}

/** AdamW betas, eps and weight decay (the no-decay rule is the caller's). */
export function configAdamW(cfg: TrainConfig): Omit<AdamWOptions, 'noDecay'> {
  const o = cfg.optimizer;
  return { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weight_decay };
}
