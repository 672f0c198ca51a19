// The parity set every accelerated backend runs against the cpu / wasm backends and the reference fixtures:
// VQGAN tokens and pixels, transformer logits, loss and gradients, T5 / CLIP states, 20 'tiny' training steps
// against wasm, and same-seed sampling. webgpu.test.ts and tensorflow.test.ts call it with their backend and,
// where the backend cannot run here, the reason to skip (see system-component.ts). Reads are asynchronous:
// dataSync() does not work on webgpu under Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fixturePath } from './fixtures.ts';
import { initBackend } from '../../src/runtime/backend.ts';
import { readData, readScalar } from '../../src/runtime/read.ts';
import { loadSafetensors, toTensor } from '../../src/models/safetensors.ts';
import { VQGAN, nchwToNhwc, nhwcToNchw } from '../../src/models/vqgan/index.ts';
import { MaskGitTransformer } from '../../src/models/transformer/index.ts';
import { ClipTextEncoder, T5Encoder } from '../../src/models/text/index.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseTrainer } from '../../src/train/muse/trainer.ts';
import type { Batch } from '../../src/train/data/batch.ts';
import { writeTinyCheckpoint } from './tiny-checkpoint.ts';
import { sample } from '../../src/sample/sample.ts';

const FIX = fixturePath();
const root = path.resolve(import.meta.dirname, '../..');

export type ParityBackend = 'webgpu' | 'tensorflow';

/** Runs `fn` on the backend, then returns to cpu; every tensor made inside must be disposed by `fn`. */
export async function on<T>(backend: 'cpu' | 'wasm' | ParityBackend, fn: () => Promise<T>): Promise<T> {
  await initBackend(backend, { quiet: true });
  try {
    return await fn();
  } finally {
    await tf.setBackend('cpu');
  }
}

export async function fixture(file: string): Promise<Record<string, tf.Tensor>> {
  const raw = await loadSafetensors(path.join(FIX, file));
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, toTensor(v)]));
}

/** max |a - b| and whether |a - b| <= atol + rtol |b| everywhere. */
export async function compare(
  a: tf.Tensor,
  b: tf.Tensor | ArrayLike<number>,
  atol: number,
  rtol: number,
): Promise<{ maxAbs: number; ok: boolean }> {
  const x = await readData<'float32'>(a);
  const y = b instanceof tf.Tensor ? await readData<'float32'>(b) : b;
  assert.equal(x.length, y.length, 'sizes differ');
  let maxAbs = 0;
  let ok = true;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    maxAbs = Math.max(maxAbs, d);
    if (!(d <= atol + rtol * Math.abs(y[i]))) ok = false;
  }
  return { maxAbs, ok };
}

/** Registers the parity tests for `backend`; `skip`: false, or why the backend cannot run here. */
export function parityTests(backend: ParityBackend, skip: string | false): void {
  const opts = { skip: skip ? skip.slice(0, 300) : false };

  test(
    `${backend}: open-muse VQGAN fixture: tokens exactly equal, decoded pixels within 1e-4 of cpu`,
    opts,
    async () => {
      const source = {
        config: path.join(FIX, 'open-muse/vqgan_config.json'),
        weights: path.join(FIX, 'open-muse/vqgan_weights.safetensors'),
      };
      const expected = await loadSafetensors(path.join(FIX, 'open-muse/vqgan_expected.safetensors'));
      const input = expected.pixel_values;
      const run = (b: 'cpu' | ParityBackend) =>
        on(b, async () => {
          const model = await VQGAN.fromSafetensors(source);
          const pixels = tf.tidy(() =>
            nchwToNhwc(tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number])),
          );
          const ids = model.encode(pixels);
          const image = tf.tidy(() => nhwcToNchw(model.decodeCode(ids as tf.Tensor2D)));
          const out = {
            ids: Array.from(await readData<'int32'>(ids)),
            pixels: Float32Array.from(await readData<'float32'>(image)),
          };
          tf.dispose([pixels, ids, image]);
          model.dispose();
          return out;
        });
      const gpu = await run(backend);
      assert.deepEqual(gpu.ids, Array.from(expected.token_indices.data), 'tokens equal the reference');
      const cpu = await run('cpu');
      assert.deepEqual(gpu.ids, cpu.ids, 'tokens equal cpu');
      let worst = 0;
      for (let i = 0; i < cpu.pixels.length; i++) worst = Math.max(worst, Math.abs(gpu.pixels[i] - cpu.pixels[i]));
      console.log(`# vqgan on ${backend}: decoded pixels max|Δ| vs cpu = ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-4, `decoded pixels: max |${backend} - cpu| ${worst}`);
      const ref = expected.decoded_from_tokens.data;
      for (let i = 0; i < ref.length; i++)
        assert.ok(Math.abs(gpu.pixels[i] - ref[i]) <= 1e-4 + 1e-4 * Math.abs(ref[i]), `decoded[${i}] vs reference`);
    },
  );

  test(
    `${backend}: open-muse transformer fixture: logits, loss and every gradient within the fixture tolerances`,
    opts,
    async () => {
      await on(backend, async () => {
        const model = await MaskGitTransformer.fromSafetensors(
          path.join(FIX, 'open-muse/transformer_rms_weights.safetensors'),
          {
            config: path.join(FIX, 'open-muse/transformer_rms_config.json'),
          },
        );
        const ex = await fixture('open-muse/transformer_rms_expected.safetensors');
        const expected = await fixture('open-muse/transformer_rms_grads.safetensors');
        try {
          const logits = model.forward(ex.input_ids, ex.encoder_hidden_states);
          const r = await compare(logits, ex.logits, 1e-4, 1e-4);
          logits.dispose();
          assert.ok(r.ok, `logits: max |Δ| ${r.maxAbs}`);
          const { loss, grads } = model.lossAndGrads(ex.input_ids, ex.labels, ex.encoder_hidden_states, undefined, {
            labelSmoothing: 0.1,
            training: true,
          });
          const got = await readScalar(loss, { dispose: true });
          const want = await readScalar(ex['loss_label_smoothing_0.1']);
          assert.ok(Math.abs(got - want) <= 1e-5, `loss ${got} vs ${want}`);
          assert.equal(grads.size, Object.keys(expected).length);
          let worst = 0;
          for (const [name, g] of grads) {
            const ref = expected[`grad.${name}`];
            assert.ok(ref, `no reference gradient for ${name}`);
            const refData = await readData<'float32'>(ref);
            const scale = refData.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
            const { maxAbs } = await compare(g, refData, Infinity, 0);
            assert.ok(maxAbs <= 1e-4 * scale, `${name}: max |Δ| ${maxAbs} vs tensor max ${scale}`);
            worst = Math.max(worst, maxAbs / scale);
          }
          tf.dispose([...grads.values()]);
          console.log(
            `# transformer_rms on ${backend}: logits max|Δ| ${r.maxAbs.toExponential(2)}, worst gradient max|Δ|/max|g| ${worst.toExponential(2)}`,
          );
        } finally {
          tf.dispose([...Object.values(ex), ...Object.values(expected)]);
          model.dispose();
        }
      });
    },
  );

  test(`${backend}: T5 and CLIP text states match the Hugging Face fixtures`, opts, async () => {
    await on(backend, async () => {
      const t5 = await T5Encoder.fromSafetensors(path.join(FIX, 't5-encoder/weights.safetensors'));
      const ex5 = await fixture('t5-encoder/expected.safetensors');
      const { lastHiddenState } = t5.forward(ex5.input_ids, ex5.attention_mask);
      const d5 = await compare(lastHiddenState, ex5.last_hidden_state, 1e-4, 0);
      tf.dispose([lastHiddenState, ...Object.values(ex5)]);
      t5.dispose();
      assert.ok(d5.ok, `t5 last_hidden_state: max |Δ| ${d5.maxAbs}`);

      const clip = await ClipTextEncoder.fromSafetensors(path.join(FIX, 'clip-text/weights.safetensors'));
      const exc = await fixture('clip-text/expected.safetensors');
      const out = clip.forward(exc.input_ids, exc.attention_mask);
      const diffs = {
        last_hidden_state: await compare(out.lastHiddenState, exc.last_hidden_state, 1e-4, 0),
        penultimate_hidden_state: await compare(out.penultimateHiddenState, exc.penultimate_hidden_state, 1e-4, 0),
        text_embeds: await compare(out.textEmbeds!, exc.text_embeds, 1e-4, 0), // pooled at the EOS found on the device
      };
      tf.dispose([out.lastHiddenState, out.penultimateHiddenState, out.pooled, out.textEmbeds!, ...Object.values(exc)]);
      clip.dispose();
      console.log(
        `# text encoders on ${backend}: t5 ${d5.maxAbs.toExponential(2)}, clip ${JSON.stringify(Object.fromEntries(Object.entries(diffs).map(([k, v]) => [k, v.maxAbs])))}`,
      );
      for (const [k, d] of Object.entries(diffs)) assert.ok(d.ok, `clip ${k}: max |Δ| ${d.maxAbs}`);
    });
  });

  /** Deterministic synthetic batches for the 'tiny' config: 8x8 token ids of 256 codes, byt5-tiny-wide text states. */
  function tinyBatches(count: number, B: number): Batch[] {
    let s = 12345;
    const next = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const N = 64;
    const L = 6;
    const D = 256;
    return Array.from({ length: count }, (_, i) => {
      const imageIds = Int32Array.from({ length: B * N }, () => Math.floor(next() * 256));
      const textHidden = Float32Array.from({ length: B * L * D }, () => next() * 2 - 1);
      const textMask = Uint8Array.from({ length: B * L }, (_, j) => (j % L < 3 + (Math.floor(j / L) % 3) ? 1 : 0));
      return {
        size: B,
        epoch: 0,
        keys: Array.from({ length: B }, (_, b) => `${i}-${b}`),
        imageIds,
        imageShape: [B, N],
        gridH: 8,
        gridW: 8,
        textHidden,
        textShape: [B, L, D],
        textMask,
        textLengths: Int32Array.from({ length: B }, (_, b) => 3 + (b % 3)),
      } satisfies Batch;
    });
  }

  test(
    `${backend}: 20 training steps of 'tiny' give the losses of wasm within 1e-3 relative; no tensor growth`,
    opts,
    async () => {
      // The tiny model as configured; batch 4 (not 16) and no warm-up, so that 20 steps on lavapipe stay short and
      // the loss visibly falls on the repeated batches.
      const cfg = loadTrainConfig({
        stage: 'tiny',
        configsDir: path.join(root, 'configs'),
        sets: ['training.batch_size=4', 'ema.update_after_step=2', 'lr_scheduler.warmup_steps=0'],
      });
      const two = tinyBatches(2, 4);
      const batches = Array.from({ length: 20 }, (_, i) => two[i % 2]);
      const train = (b: 'wasm' | ParityBackend) =>
        on(b, async () => {
          const model = new MaskGitTransformer(cfg.model.transformer, { seed: cfg.training.seed });
          const trainer = new MuseTrainer(model, cfg);
          const losses: number[] = [];
          let after2 = 0;
          try {
            for (let step = 0; step < batches.length; step++) {
              losses.push((await trainer.step(batches[step], step)).loss);
              if (step === 1) after2 = tf.memory().numTensors;
            }
            assert.equal(tf.memory().numTensors, after2, `${b}: tensors grew between steps 2 and 20`);
          } finally {
            trainer.dispose();
            model.dispose();
          }
          return losses;
        });
      const gpu = await train(backend);
      const wasm = await train('wasm');
      console.log(`# tiny x20 losses ${backend} ${gpu.map((l) => l.toFixed(4)).join(' ')}`);
      assert.ok(gpu[19] < gpu[1] - 0.05, 'the loss goes down');
      gpu.forEach((l, i) =>
        assert.ok(
          Math.abs(l - wasm[i]) <= 1e-3 * Math.abs(wasm[i]),
          `step ${i + 1}: ${backend} ${l} vs wasm ${wasm[i]}`,
        ),
      );
    },
  );

  test(`${backend}: sampling with the same seed gives the same image twice`, opts, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), `muse-${backend}-`));
    try {
      const ckpt = await writeTinyCheckpoint(dir, { seed: 5 });
      const images = await on(backend, async () => {
        const before = tf.memory().numTensors;
        const run = () =>
          sample({
            checkpoint: ckpt,
            prompts: ['a red circle on a blue background'],
            steps: 4,
            guidance: 3,
            seed: 7,
            num: 2,
          });
        const a = await run();
        const b = await run();
        assert.equal(tf.memory().numTensors, before, 'sampling leaves no tensors behind');
        return [a, b];
      });
      const [a, b] = images;
      assert.equal(a.images.length, 2);
      a.images.forEach((img, i) => {
        assert.deepEqual(Array.from(img.ids), Array.from(b.images[i].ids), `image ${i}: same tokens`);
        assert.ok(img.png.equals(b.images[i].png), `image ${i}: same PNG bytes`);
      });
      assert.notDeepEqual(
        Array.from(a.images[0].ids),
        Array.from(a.images[1].ids),
        'the two samples of the prompt differ',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
