// The shared training core: optimizer, schedules, gradient utilities, EMA, logs, plots (checkpoints: src/run-folder/).
export * from './optimizer.ts';
export * from './lr-schedule.ts';
export * from './grads.ts';
export * from './ema.ts';
export * from './run-log.ts';
export * from './loss-curve.ts';
export * from './tensorboard.ts';
export * from './data-parallel.ts';
