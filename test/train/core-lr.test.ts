import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRate } from '../../src/train/core/lr-schedule.ts';

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12, `${what}: ${a} vs ${b}`);

test('warmup is step / warmup times lr for every schedule', () => {
  for (const schedule of ['constant', 'cosine', 'linear'] as const) {
    const o = { lr: 1e-3, warmupSteps: 4, schedule, maxSteps: 20 };
    assert.equal(learningRate(0, o), 0);
    near(learningRate(1, o), 2.5e-4, `${schedule} step 1`);
    near(learningRate(3, o), 7.5e-4, `${schedule} step 3`);
    near(learningRate(4, o), 1e-3, `${schedule} step 4 (end of warmup)`);
  }
});

test('constant, cosine and linear after warmup (hand-computed)', () => {
  const base = { lr: 2, warmupSteps: 2, maxSteps: 10 };
  assert.equal(learningRate(9, { ...base, schedule: 'constant' }), 2);
  assert.equal(learningRate(50, { ...base, schedule: 'constant' }), 2);
  // progress at step 6 = (6-2)/8 = 0.5
  near(learningRate(6, { ...base, schedule: 'cosine' }), 1, 'cosine mid');
  near(learningRate(4, { ...base, schedule: 'cosine' }), 1 + Math.cos(Math.PI / 4), 'cosine quarter');
  near(learningRate(6, { ...base, schedule: 'linear' }), 1, 'linear mid');
  near(learningRate(8, { ...base, schedule: 'linear' }), 0.5, 'linear 3/4');
  near(learningRate(10, { ...base, schedule: 'cosine' }), 0, 'cosine end');
  near(learningRate(30, { ...base, schedule: 'cosine' }), 0, 'cosine stays at the floor');
  // with a floor: min + (lr - min) * factor
  near(learningRate(6, { ...base, schedule: 'cosine', minLr: 0.4 }), 0.4 + 1.6 * 0.5, 'cosine floor mid');
  near(learningRate(12, { ...base, schedule: 'linear', minLr: 0.4 }), 0.4, 'linear floor end');
  // no warmup: the first step has the full rate
  assert.equal(learningRate(0, { ...base, warmupSteps: 0, schedule: 'cosine' }), 2);
});

test('bad options are named', () => {
  const o = { lr: 1, warmupSteps: 0, schedule: 'cosine' as const, maxSteps: 5 };
  assert.throws(() => learningRate(-1, o), /step must be/);
  assert.throws(() => learningRate(0, { ...o, schedule: 'exp' as unknown as 'cosine' }), /unknown schedule 'exp'/);
  assert.throws(() => learningRate(0, { ...o, minLr: 2 }), /minLr/);
  assert.throws(() => learningRate(0, { ...o, warmupSteps: 1.5 }), /warmupSteps/);
});

test('decaySteps holds lr, then decays over the last steps only (warmup-stable-decay)', () => {
  const o = { lr: 2, warmupSteps: 2, schedule: 'cosine' as const, maxSteps: 10, minLr: 0.2, decaySteps: 4 };
  assert.equal(learningRate(1, o), 1, 'warmup unchanged');
  for (const step of [2, 3, 4, 5, 6]) assert.equal(learningRate(step, o), 2, `stable at ${step}`);
  assert.ok(Math.abs(learningRate(8, o) - (0.2 + 1.8 * 0.5)) < 1e-12, 'half way through the decay');
  assert.ok(Math.abs(learningRate(10, o) - 0.2) < 1e-12, 'floor at the end');
  assert.ok(Math.abs(learningRate(8, { ...o, schedule: 'linear' }) - (0.2 + 1.8 * 0.5)) < 1e-12);
  // decaySteps longer than the run after warmup: decays from the end of warmup
  assert.equal(learningRate(2, { ...o, decaySteps: 100 }), 2);
  assert.ok(learningRate(3, { ...o, decaySteps: 100 }) < 2);
  assert.throws(() => learningRate(5, { ...o, decaySteps: -1 }), /decaySteps/);
});
