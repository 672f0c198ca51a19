import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { EMA, type EmaOptions } from '../../src/train/core/ema.ts';

type Full = Required<EmaOptions>;
const DEFAULTS: Full = {
  decay: 0.9999,
  minDecay: 0,
  updateAfterStep: 0,
  updateEvery: 1,
  useWarmup: false,
  invGamma: 1,
  power: 2 / 3,
};

/** diffusers EMAModel.get_decay, written out independently. */
function refDecay(step: number, o: Full): number {
  const s = Math.max(0, step - o.updateAfterStep - 1);
  if (s <= 0) return 0;
  const d = o.useWarmup ? 1 - (1 + s / o.invGamma) ** -o.power : (1 + s) / (10 + s);
  return Math.max(Math.min(d, o.decay), o.minDecay);
}

test('decayAt follows diffusers get_decay', () => {
  const e = new EMA(new Map(), { decay: 0.9, updateAfterStep: 2 });
  assert.equal(e.decayAt(1), 0);
  assert.equal(e.decayAt(3), 0); // s = 0
  assert.ok(Math.abs(e.decayAt(4) - 2 / 11) < 1e-15); // s = 1
  assert.equal(e.decayAt(1000), 0.9); // capped at decay
  const w = new EMA(new Map(), { decay: 0.999, useWarmup: true, invGamma: 1, power: 0.75, minDecay: 0.5 });
  assert.equal(w.decayAt(2), 0.5); // 1 - 2^-0.75 = 0.405 -> raised to minDecay
  assert.ok(Math.abs(w.decayAt(11) - (1 - 11 ** -0.75)) < 1e-15);
  assert.throws(() => new EMA(new Map(), { decay: 1.5 }), /decay must be in \[0, 1\]/);
  assert.throws(() => new EMA(new Map(), { decay: 0.9, updateEvery: 0 }), /updateEvery/);
});

test('shadow follows a float64 EMA over steps with updateAfterStep and updateEvery', async () => {
  const opts: Full = { ...DEFAULTS, decay: 0.8, updateAfterStep: 1, updateEvery: 2 };
  const p = tf.variable(tf.tensor1d([1, -2, 0.5]));
  const ema = new EMA(new Map([['w', p]]), opts);
  assert.deepEqual(Array.from(await ema.shadow.get('w')!.data()), [1, -2, 0.5], 'starts equal');
  let ref = [1, -2, 0.5];
  const before = tf.memory().numTensors;
  for (let step = 1; step <= 9; step++) {
    // the "optimizer" moves the weights
    const next = [1 + step * 0.3, -2 + Math.sin(step), 0.5 * step];
    tf.tidy(() => {
      p.assign(tf.tensor1d(next));
    });
    ema.update(step);
    if ((step - 1) % 2 === 0) {
      const d = refDecay(step, opts);
      ref = ref.map((s, i) => s - (1 - d) * (s - next[i]));
    }
    const got = await ema.shadow.get('w')!.data();
    ref.forEach((r, i) => assert.ok(Math.abs(got[i] - r) < 1e-5, `step ${step} [${i}]: ${got[i]} vs ${r}`));
  }
  assert.equal(tf.memory().numTensors, before, 'update does not leak');
  // steps 1 and 3 copy (decay 0); step 5 onward average: shadow differs from the weights
  assert.notDeepEqual(Array.from(await ema.shadow.get('w')!.data()), Array.from(await p.data()));
  ema.dispose();
  p.dispose();
});

test('withEmaWeights swaps in the shadow and restores, also on throw; state round trip is strict', async () => {
  const p = tf.variable(tf.tensor1d([1, 2]));
  const ema = new EMA(new Map([['w', p]]), { decay: 0.5 });
  tf.tidy(() => {
    p.assign(tf.tensor1d([3, 4]));
  });
  ema.update(2); // decay (1+1)/(10+1) = 2/11 < 0.5
  const expected = [1 - (9 / 11) * (1 - 3), 2 - (9 / 11) * (2 - 4)];
  const seen = await ema.withEmaWeights(async () => Array.from(await p.data()));
  seen.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `${v} vs ${expected[i]}`));
  assert.deepEqual(Array.from(await p.data()), [3, 4], 'restored');
  await assert.rejects(
    ema.withEmaWeights(() => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.deepEqual(Array.from(await p.data()), [3, 4], 'restored after a throw');

  const state = ema.stateTensors();
  assert.deepEqual([...state.keys()], ['w']);
  const q = tf.variable(tf.tensor1d([0, 0]));
  const ema2 = new EMA(new Map([['w', q]]), { decay: 0.5 });
  await ema2.loadState(state);
  assert.deepEqual(Array.from(await ema2.shadow.get('w')!.data()), Array.from(await state.get('w')!.data()));
  const wrong = new Map<string, tf.Tensor>([['w', tf.zeros([3])]]);
  await assert.rejects(ema2.loadState(wrong), /w has shape \[3\]/);
  const extra = new Map<string, tf.Tensor>([['v', tf.zeros([2])]]);
  await assert.rejects(ema2.loadState(extra), /unknown tensor v; missing w/);
  for (const m of [state, wrong, extra]) for (const t of m.values()) t.dispose();
  ema.dispose();
  ema2.dispose();
  p.dispose();
  q.dispose();
});
