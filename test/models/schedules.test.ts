import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  cosineSchedule,
  maskLenAtStep,
  maskSchedule,
  numTokensToMask,
  roundHalfEven,
} from '../../src/models/schedules.ts';
import { fixturePath } from '../helpers/fixtures.ts';

const fixture = JSON.parse(readFileSync(fixturePath('open-muse', 'mask_schedules.json'), 'utf8')) as {
  t: number[];
  schedules: Record<string, { float32: number[] }>;
  training_num_token_masked_cosine: { values_at_t_by_seq_len: Record<string, number[]> };
  generate2_mask_len_cosine: { values_before_clamp: Record<string, number[]> };
};

/** Fixture key -> schedule; `sigmoid(start=-2,end=4,tau=0.5)` carries its parameters in the name. */
function scheduleFor(key: string) {
  const m = /^sigmoid\(start=(-?[\d.]+),end=(-?[\d.]+),tau=([\d.]+)\)$/.exec(key);
  if (m) return maskSchedule('sigmoid', { start: Number(m[1]), end: Number(m[2]), tau: Number(m[3]) });
  return maskSchedule(key);
}

test('every fixture schedule matches the float32 reference within 1e-6', () => {
  const keys = Object.keys(fixture.schedules);
  assert.ok(keys.length >= 7, `fixture lists ${keys.length} schedules`);
  for (const key of keys) {
    const schedule = scheduleFor(key);
    fixture.schedules[key].float32.forEach((expected, i) => {
      const got = schedule(fixture.t[i]);
      assert.ok(Math.abs(got - expected) <= 1e-6, `${key} at t=${fixture.t[i]}: ${got} vs ${expected}`);
    });
  }
  // The unclamped float32 cosine at t = 1 is slightly negative, as in PyTorch.
  assert.ok(cosineSchedule(1) < 0 && cosineSchedule(1) > -1e-7);
});

test('arccos is the cosine schedule; unknown names are rejected', () => {
  assert.equal(maskSchedule('arccos'), maskSchedule('cosine'));
  assert.throws(() => maskSchedule('cubic'), /unknown mask schedule 'cubic'/);
  assert.throws(() => maskSchedule('pow'), /unknown mask schedule/);
});

test('training token counts equal the reference exactly (round half to even)', () => {
  for (const [len, counts] of Object.entries(fixture.training_num_token_masked_cosine.values_at_t_by_seq_len)) {
    assert.deepEqual(
      fixture.t.map((t) => numTokensToMask(Number(len), t)),
      counts,
      `L=${len}`,
    );
  }
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, 2, 3]);
});

test('generate2 per-step mask lengths equal the reference exactly', () => {
  const entries = Object.entries(fixture.generate2_mask_len_cosine.values_before_clamp);
  assert.ok(entries.length >= 6);
  for (const [key, expected] of entries) {
    const [, T, L] = /T=(\d+),L=(\d+)/.exec(key)!.map(Number);
    assert.deepEqual(
      [...Array(T).keys()].map((s) => maskLenAtStep(L, s, T)),
      expected,
      key,
    );
  }
});
