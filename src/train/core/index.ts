// The shared training core: optimizer, schedules, gradient utilities, EMA, checkpoints, logs, plots.
export * from './optimizer.ts';
export * from './lr-schedule.ts';
export * from './grads.ts';
export * from './ema.ts';
export * from './checkpoints.ts';
export * from './run-log.ts';
export * from './loss-curve.ts';
export * from './tensorboard.ts';
export * from './data-parallel.ts';
