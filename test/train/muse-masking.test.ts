import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskTokens } from '../../src/train/muse/masking.ts';
import { dropConditioning } from '../../src/train/muse/cond-dropout.ts';
import { SeededRandom } from '../../src/train/data/random.ts';
import { cosineSchedule, maskSchedule, numTokensToMask } from '../../src/models/schedules.ts';
import { IGNORE_INDEX } from '../../src/models/transformer/loss.ts';
import type { Batch } from '../../src/train/data/batch.ts';

test('masking: counts follow the schedule, labels only where masked, positions uniform', () => {
  const B = 4000;
  const N = 64;
  const ids = Int32Array.from({ length: B * N }, (_, i) => (i * 7) % 250);
  const rng = new SeededRandom(123);
  const m = maskTokens(ids, B, N, 256, rng, cosineSchedule, 0);
  const perPosition = new Float64Array(N);
  let rateSum = 0;
  const check = new SeededRandom(123);
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let i = 0; i < N; i++) {
      const p = b * N + i;
      const masked = m.inputIds[p] === 256;
      if (masked) {
        count++;
        perPosition[i]++;
        assert.equal(m.labels[p], ids[p]);
      } else {
        assert.equal(m.labels[p], IGNORE_INDEX);
        assert.equal(m.inputIds[p], ids[p]);
      }
    }
    // Replaying the draws gives the same count: round(N * cos(pi t / 2)), at least 1.
    const expected = numTokensToMask(N, check.next(), cosineSchedule, 0);
    for (let i = 0; i < expected; i++) check.below(N - i);
    assert.equal(count, expected);
    assert.equal(m.maskRates[b], count / N);
    rateSum += count / N;
  }
  // E[cos(pi t / 2)] for t ~ U[0, 1) is 2 / pi.
  assert.ok(Math.abs(rateSum / B - 2 / Math.PI) < 0.02, `mean mask rate ${rateSum / B}`);
  // Every position is masked about equally often.
  const mean = perPosition.reduce((a, b) => a + b) / N;
  for (const c of perPosition) assert.ok(Math.abs(c - mean) / mean < 0.12, `position count ${c} vs mean ${mean}`);
});

test('masking: min_masking_rate raises low rates; same seed, same masks', () => {
  const ids = new Int32Array(500 * 16).fill(3);
  const a = maskTokens(ids, 500, 16, 99, new SeededRandom(5), maskSchedule('linear'), 0.5);
  for (const r of a.maskRates) assert.ok(r >= 0.5, `rate ${r}`);
  const b = maskTokens(ids, 500, 16, 99, new SeededRandom(5), maskSchedule('linear'), 0.5);
  assert.deepEqual(a.inputIds, b.inputIds);
  const c = maskTokens(ids, 500, 16, 99, new SeededRandom(6), maskSchedule('linear'), 0.5);
  assert.notDeepEqual(a.inputIds, c.inputIds);
});

test('conditioning dropout replaces a fraction of samples by the empty caption', () => {
  const B = 2000;
  const L = 3;
  const D = 2;
  const batch = {
    size: B,
    epoch: 0,
    keys: [],
    imageIds: new Int32Array(B),
    imageShape: [B, 1],
    gridH: 1,
    gridW: 1,
    textHidden: new Float32Array(B * L * D).fill(5),
    textShape: [B, L, D],
    textMask: new Uint8Array(B * L).fill(1),
    textLengths: new Int32Array(B).fill(L),
    pooled: new Float32Array(B * 2).fill(5),
    pooledShape: [B, 2],
  } as Batch;
  const empty = { hidden: Float32Array.from([-1, -2]), length: 1, dim: D, pooled: Float32Array.from([7, 8]) };
  const dropped = dropConditioning(batch, empty, 0.1, new SeededRandom(9));
  assert.ok(Math.abs(dropped.length / B - 0.1) < 0.02, `dropped ${dropped.length}`);
  const set = new Set(dropped);
  for (let b = 0; b < B; b++) {
    const row = [...batch.textHidden!.subarray(b * L * D, (b + 1) * L * D)];
    const mask = [...batch.textMask!.subarray(b * L, (b + 1) * L)];
    if (set.has(b)) {
      assert.deepEqual(row, [-1, -2, 0, 0, 0, 0]);
      assert.deepEqual(mask, [1, 0, 0]);
      assert.deepEqual([...batch.pooled!.subarray(b * 2, b * 2 + 2)], [7, 8]);
    } else {
      assert.deepEqual(row, [5, 5, 5, 5, 5, 5]);
      assert.deepEqual(mask, [1, 1, 1]);
    }
  }
});
