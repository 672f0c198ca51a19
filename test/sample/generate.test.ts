import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { MaskGitTransformer } from '../../src/models/transformer/index.ts';
import { byt5Tiny } from '../../src/models/text/index.ts';
import { maskLenAtStep, maskSchedule } from '../../src/models/schedules.ts';
import { generate, type GenerateOptions } from '../../src/sample/generate.ts';
import { encodePrompts, disposeConditioning } from '../../src/sample/conditioning.ts';
import { guidanceAt, parseTemperature, temperatureAt } from '../../src/sample/schedules.ts';
import { tinyTransformerConfig } from '../helpers/tiny-checkpoint.ts';

const text = byt5Tiny();
const model = new MaskGitTransformer(tinyTransformerConfig(), { seed: 3 });
const N = model.config.num_vq_tokens;
const MASK = model.config.mask_token_id;
const cond = (prompts: string[]) => encodePrompts(text, prompts);

/** Masked count after each step, recorded through onStep. */
async function maskedPerStep(
  opts: Omit<GenerateOptions, 'onStep'>,
  batch = 1,
): Promise<{ ids: Int32Array; masked: number[][] }> {
  const masked: number[][] = [];
  const ids = await generate(model, batch, {
    ...opts,
    onStep: (_s, cur) => {
      masked.push(
        Array.from({ length: batch }, (_, b) => cur.slice(b * N, (b + 1) * N).filter((v) => v === MASK).length),
      );
    },
  });
  return { ids, masked };
}

test('tokens left masked per step follow floor(N cos(pi/2 (s+1)/T)), all are filled at the end', async () => {
  const c = cond(['a red circle on a blue background']);
  const { ids, masked } = await maskedPerStep({ steps: 5, guidanceScale: 1, seed: 1, cond: c });
  // N = 16: floor(16 cos(pi/2 * k/5)) for k = 1..4 = 15, 12, 9, 4, then 0.
  assert.deepEqual(
    masked.map((m) => m[0]),
    [15, 12, 9, 4, 0],
  );
  const unmaskedPerStep = masked.map((m, s) => (s === 0 ? N : masked[s - 1][0]) - m[0]);
  assert.equal(
    unmaskedPerStep.reduce((a, b) => a + b, 0),
    N,
  );
  assert.ok(
    ids.every((v) => v >= 0 && v < model.config.codebook_size),
    'only codebook ids are sampled',
  );
  disposeConditioning(c);
});

test('with many steps the counts are maskLenAtStep clamped to [1, unknown - 1]', async () => {
  const c = cond(['a white star on a black background']);
  const steps = 12;
  const { masked } = await maskedPerStep({ steps, guidanceScale: 1, seed: 2, cond: c, schedule: 'linear' });
  let unknown = N;
  for (let s = 0; s < steps; s++) {
    const raw = Math.floor(N * Math.max(1e-6, 1 - (s + 1) / steps));
    const expected = s === steps - 1 ? 0 : Math.max(1, Math.min(unknown - 1, raw));
    assert.equal(masked[s][0], expected, `step ${s}`);
    unknown = expected;
  }
  // Same as the library's maskLenAtStep (float32 like open-muse) for this linear schedule.
  for (let s = 0; s < steps - 1; s++)
    assert.equal(maskLenAtStep(N, s, steps, maskSchedule('linear')), Math.floor(N * (1 - (s + 1) / steps)));
  disposeConditioning(c);
});

test('same seed gives the same ids, another seed other ids; rows do not depend on the batch', async () => {
  const c = cond(['a red circle on a blue background', 'a green cross on a white background']);
  const u = cond(['']);
  const base = { steps: 4, guidanceScale: 3, cond: c, uncond: u, temperature: [2, 0] as [number, number] };
  const a = await generate(model, 2, { ...base, seed: 7 });
  const b = await generate(model, 2, { ...base, seed: 7 });
  const d = await generate(model, 2, { ...base, seed: 8 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, d);
  const c1 = cond(['a green cross on a white background']);
  const alone = await generate(model, 1, { ...base, cond: c1, seed: 7, firstRow: 1 });
  assert.deepEqual(alone, a.slice(N));
  [c, u, c1].forEach(disposeConditioning);
});

test('guidance 0 with a prompt equals guidance 1 with the empty prompt; a negative prompt changes the output', async () => {
  const prompt = cond(['a yellow square on a purple background']);
  const empty = cond(['']);
  const g0 = await generate(model, 1, { steps: 6, guidanceScale: 0, seed: 11, cond: prompt, uncond: empty });
  const g1 = await generate(model, 1, { steps: 6, guidanceScale: 1, seed: 11, cond: empty });
  assert.deepEqual(g0, g1);
  const withPrompt = await generate(model, 1, { steps: 6, guidanceScale: 1, seed: 11, cond: prompt });
  assert.notDeepEqual(withPrompt, g1, 'the prompt matters to the random model');

  const negative = cond(['a black triangle on a green background']);
  const plain = await generate(model, 1, { steps: 6, guidanceScale: 4, seed: 11, cond: prompt, uncond: empty });
  const neg = await generate(model, 1, { steps: 6, guidanceScale: 4, seed: 11, cond: prompt, uncond: negative });
  assert.notDeepEqual(plain, neg);
  [prompt, empty, negative].forEach(disposeConditioning);
});

test('inpainting keeps the kept tokens at every step', async () => {
  const c = cond(['a blue circle on a yellow background', 'a red star on a white background']);
  const initIds = Int32Array.from({ length: 2 * N }, (_, i) => (i * 7) % model.config.codebook_size);
  const keep = Uint8Array.from({ length: 2 * N }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const kept = keep.reduce((a, b) => a + b, 0);
  const seen: Int32Array[] = [];
  const ids = await generate(model, 2, {
    steps: 5,
    guidanceScale: 1,
    seed: 5,
    cond: c,
    init: { ids: initIds, keep },
    onStep: (_s, cur) => {
      seen.push(cur);
    },
  });
  for (const cur of [...seen, ids]) for (let i = 0; i < 2 * N; i++) if (keep[i]) assert.equal(cur[i], initIds[i]);
  assert.ok(ids.every((v) => v !== MASK));
  // Counts start from the unknown tokens: the first step unmasks at least one of them.
  const firstMasked = seen[0].filter((v) => v === MASK).length;
  assert.ok(firstMasked < 2 * N - kept);
  disposeConditioning(c);
});

test('bad options are refused with a message naming them', async () => {
  const c = cond(['x']);
  await assert.rejects(generate(model, 1, { steps: 4, guidanceScale: 3, seed: 1, cond: c }), /uncond/);
  await assert.rejects(generate(model, 1, { steps: 0, guidanceScale: 1, seed: 1, cond: c }), /steps/);
  await assert.rejects(generate(model, 2, { steps: 2, guidanceScale: 1, seed: 1, cond: c }), /batch 1, expected 2/);
  await assert.rejects(generate(model, 1, { steps: 2, guidanceScale: 1, seed: 1, cond: {} }), /hidden/);
  await assert.rejects(
    generate(model, 1, { steps: 2, guidanceScale: 1, seed: 1, cond: c, temperature: -1 }),
    /temperature/,
  );
  disposeConditioning(c);
  const cls = new MaskGitTransformer(tinyTransformerConfig({ classes: 3 }), { seed: 1 });
  const classIds = tf.tensor1d([0, 2], 'int32');
  const ids = await generate(cls, 2, { steps: 3, guidanceScale: 1, seed: 1, cond: { classIds } });
  assert.equal(ids.length, 2 * N);
  await assert.rejects(
    generate(cls, 2, { steps: 3, guidanceScale: 2, seed: 1, cond: { classIds } }),
    /class-conditional models have no unconditional class/,
  );
  classIds.dispose();
  cls.dispose();
});

test('guidance and temperature schedules', () => {
  assert.deepEqual(
    [0, 1, 2, 3].map((s) => guidanceAt('constant', 4, s, 4)),
    [4, 4, 4, 4],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((s) => guidanceAt('linear', 3, s, 4)),
    [0, 1, 2, 3],
  );
  const cos = [0, 1, 2, 3].map((s) => guidanceAt('cosine', 2, s, 4));
  assert.ok(Math.abs(cos[3] - 2) < 1e-12 && Math.abs(cos[1] - 2 * Math.SQRT1_2) < 1e-12);
  assert.deepEqual(
    [0, 1, 2, 3].map((s) => temperatureAt([2, 0], s, 5)),
    [2, 1.5, 1, 0.5],
  );
  assert.deepEqual(
    [0, 3].map((s) => temperatureAt(2, s, 4)),
    [1.5, 0],
  );
  assert.deepEqual(parseTemperature('2,0'), [2, 0]);
  assert.equal(parseTemperature('1.5'), 1.5);
  assert.throws(() => parseTemperature('2,x'), /--temperature/);
});
