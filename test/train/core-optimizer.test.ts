import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdamW, defaultNoDecay } from '../../src/train/core/optimizer.ts';
import { onBackend } from '../helpers/backend.ts';

/** torch.optim.AdamW for one flat parameter in float64. */
function refAdamW(
  p: number[],
  grads: number[][],
  lrs: number[],
  o: { b1: number; b2: number; eps: number; wd: number },
): number[] {
  const x = [...p];
  const m = x.map(() => 0);
  const v = x.map(() => 0);
  grads.forEach((g, t) => {
    const step = t + 1;
    const lr = lrs[t];
    const bc1 = 1 - o.b1 ** step;
    const bc2 = 1 - o.b2 ** step;
    for (let i = 0; i < x.length; i++) {
      x[i] *= 1 - lr * o.wd;
      m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
      v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
      const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + o.eps;
      x[i] -= (lr / bc1) * (m[i] / denom);
    }
  });
  return x;
}

function closeAll(got: ArrayLike<number>, want: number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])),
      `${what}[${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

test('defaultNoDecay decides by name', () => {
  for (const n of [
    'a.bias',
    'x.norm_bias',
    'encoder_layer_norm.weight',
    'mlm_layer.mlm_ln.weight',
    'blk.ln_1.weight',
    'h.attn_ln.weight',
    'decoder.norm_out.weight',
    'embed.word_embeddings.weight',
    'quantize.embedding.weight',
  ]) {
    assert.equal(defaultNoDecay(n), true, n);
  }
  for (const n of ['attn.query.weight', 'encoder.conv_in.weight', 'mlm_layer.dense.weight', 'scale']) {
    assert.equal(defaultNoDecay(n), false, n);
  }
});

const O = { b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 };
const W0 = [0.5, -1.25, 2, 0.001, -0.3, 0.75];
const B0 = [0.1, -0.2];
const gradsW = [
  [0.1, -0.2, 0.3, 1e-4, 2, -0.5],
  [-0.3, 0.1, 0.05, 0, -1, 0.25],
  [0.2, 0.2, -0.4, 3e-3, 0.5, 0],
  [1, -1, 0.5, 0.1, -0.1, 0.01],
];
const gradsB = [
  [0.5, -0.5],
  [0.25, 0.1],
  [-1, 0.3],
  [0.05, 0.05],
];
const LRS = [1e-2, 5e-3, 2e-2, 1e-3];

async function runSteps(backend: 'cpu' | 'wasm'): Promise<void> {
  await onBackend(backend, async () => {
    const w = tf.variable(tf.tensor2d(W0, [2, 3]));
    const b = tf.variable(tf.tensor1d(B0));
    const params = new Map<string, tf.Variable>([
      ['layer.weight', w],
      ['layer.bias', b],
    ]);
    const opt = new AdamW(params, { beta1: O.b1, beta2: O.b2, eps: O.eps, weightDecay: O.wd });
    assert.deepEqual(opt.decayedNames(), ['layer.weight']);
    const before = tf.memory().numTensors;
    for (let t = 0; t < gradsW.length; t++) {
      const grads = new Map<string, tf.Tensor>([
        ['layer.weight', tf.tensor2d(gradsW[t], [2, 3])],
        ['layer.bias', tf.tensor1d(gradsB[t])],
      ]);
      opt.apply(grads, LRS[t]);
      for (const g of grads.values()) g.dispose();
      assert.equal(tf.memory().numTensors, before, `tensor count after step ${t + 1}`);
    }
    assert.equal(opt.step, 4);
    closeAll(await w.data(), refAdamW(W0, gradsW, LRS, O), 2e-6, 'weight');
    closeAll(await b.data(), refAdamW(B0, gradsB, LRS, { ...O, wd: 0 }), 2e-6, 'bias (no decay)');
    opt.dispose();
    w.dispose();
    b.dispose();
  });
}

test('AdamW matches a float64 torch.optim.AdamW on cpu, memory flat', () => runSteps('cpu'));
test('AdamW matches a float64 torch.optim.AdamW on wasm', () => runSteps('wasm'));

test('a param without a grad is left alone and keeps its own step', async () => {
  const w = tf.variable(tf.tensor1d([1, 2]));
  const u = tf.variable(tf.tensor1d([3]));
  const opt = new AdamW(
    new Map([
      ['w', w],
      ['u', u],
    ]),
    { beta1: O.b1, beta2: O.b2, eps: O.eps, weightDecay: 0.1 },
  );
  const g = (x: number[]) => tf.tensor1d(x);
  const g1 = new Map([['w', g([1, 1])]]);
  opt.apply(g1, 0.1);
  assert.deepEqual(Array.from(await u.data()), [3]);
  const g2 = new Map([
    ['w', g([0.5, -0.5])],
    ['u', g([2])],
  ]);
  opt.apply(g2, 0.1);
  // u's first update uses step 1 bias correction, as PyTorch's per-param state does.
  closeAll(await u.data(), refAdamW([3], [[2]], [0.1], { ...O, wd: 0.1 }), 1e-6, 'u');
  const st = opt.stateTensors();
  assert.equal((await st.get('step.u')!.data())[0], 1);
  assert.ok(!st.has('step.w'));
  for (const t of [...g1.values(), ...g2.values(), ...st.values()]) t.dispose();
  opt.dispose();
});

test('stateTensors/loadState round trip continues identically; strict on names and shapes', async () => {
  const mk = () => tf.variable(tf.tensor2d(W0, [2, 3]));
  const a = mk();
  const opt = new AdamW(new Map([['w', a]]), { beta1: O.b1, beta2: O.b2, eps: O.eps, weightDecay: O.wd });
  const gradAt = (t: number) => new Map<string, tf.Tensor>([['w', tf.tensor2d(gradsW[t], [2, 3])]]);
  for (let t = 0; t < 2; t++) {
    const gm = gradAt(t);
    opt.apply(gm, LRS[t]);
    gm.get('w')!.dispose();
  }
  const state = opt.stateTensors();
  assert.deepEqual([...state.keys()].sort(), ['exp_avg.w', 'exp_avg_sq.w']);
  // A fresh optimizer on a copy of the weights, restored from state, must continue exactly like the original.
  const b = tf.variable(tf.clone(a));
  const opt2 = new AdamW(new Map([['w', b]]), { beta1: O.b1, beta2: O.b2, eps: O.eps, weightDecay: O.wd });
  await opt2.loadState(state, opt.step);
  assert.equal(opt2.step, 2);
  for (let t = 2; t < 4; t++) {
    const gm = gradAt(t);
    opt.apply(gm, LRS[t]);
    opt2.apply(gm, LRS[t]);
    gm.get('w')!.dispose();
  }
  assert.deepEqual(Array.from(await b.data()), Array.from(await a.data()));
  closeAll(await a.data(), refAdamW(W0, gradsW, LRS, O), 2e-6, 'resumed');
  // state clones are still the old values and disposable by the caller
  for (const t of state.values()) t.dispose();

  const bad1 = new Map<string, tf.Tensor>([['exp_avg.w', tf.zeros([2, 3])]]);
  await assert.rejects(opt2.loadState(bad1, 1), /missing exp_avg_sq\.w/);
  const bad2 = new Map<string, tf.Tensor>([
    ['exp_avg.w', tf.zeros([3, 2])],
    ['exp_avg_sq.w', tf.zeros([2, 3])],
  ]);
  await assert.rejects(opt2.loadState(bad2, 1), /exp_avg\.w has shape \[3,2\]/);
  const bad3 = new Map<string, tf.Tensor>([
    ['exp_avg.w', tf.zeros([2, 3])],
    ['exp_avg_sq.w', tf.zeros([2, 3])],
    ['exp_avg.zz', tf.zeros([1])],
  ]);
  await assert.rejects(opt2.loadState(bad3, 1), /unknown optimizer tensor exp_avg\.zz/);
  assert.equal(opt2.step, 4, 'failed loads leave the optimizer untouched');
  assert.throws(() => opt2.apply(new Map([['nope', tf.zeros([1])]]), 0.1), /unknown parameter nope/);
  assert.throws(() => opt2.apply(new Map(), Number.NaN), /learning rate/);
  for (const m of [bad1, bad2, bad3]) for (const t of m.values()) t.dispose();
  opt.dispose();
  opt2.dispose();
  a.dispose();
  b.dispose();
});
