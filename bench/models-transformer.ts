// Throughput of a small MaskGIT transformer: forward (eval) and training step (forward + backward + AdamW)
// in image tokens/s, on a given backend. Config as the PyTorch anchor in docs/runtime-notes.md: cc12m style
// (RMSNorm, no biases, no normformer), hidden 256, 4 layers, 8 heads, FFN 4×hidden, 256 image tokens,
// vocab 1024 + mask, cross-attention to 16 text states × 256, batch 8, masking by the cosine schedule.
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { initBackend, type BackendName } from '../src/runtime/backend.ts';
import { MaskGitTransformer } from '../src/models/transformer/model.ts';
import { Prng } from '../src/models/layers/prng.ts';

export interface TransformerBenchOptions {
  hidden?: number;
  layers?: number;
  heads?: number;
  batch?: number;
  warmup?: number;
  steps?: number;
  /** Called with each timed sample as it is taken (a caller with a deadline keeps what was measured). */
  onSample?: (kind: 'forward' | 'train', ms: number) => void;
}

const PYTORCH_MS_PER_STEP: Record<string, number> = { '256x4': 1459, '512x8': 8330 };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** One batch masked as open-muse trains: t ~ U(0,1), round(L·cos(πt/2)) random positions (≥ 1) masked. */
function maskedBatch(rng: Prng, batch: number, length: number, codebook: number, maskId: number) {
  const ids = new Int32Array(batch * length);
  const labels = new Int32Array(batch * length).fill(-100);
  for (let b = 0; b < batch; b++) {
    const count = Math.max(1, Math.round(length * Math.max(0, Math.cos((rng.uniform() * Math.PI) / 2))));
    const order = Array.from({ length }, (_, i) => i);
    for (let i = length - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let i = 0; i < length; i++) ids[b * length + i] = Math.floor(rng.uniform() * codebook);
    for (const i of order.slice(0, count)) {
      labels[b * length + i] = ids[b * length + i];
      ids[b * length + i] = maskId;
    }
  }
  return { ids: tf.tensor2d(ids, [batch, length], 'int32'), labels: tf.tensor2d(labels, [batch, length], 'int32') };
}

async function timeIt(
  fn: () => Promise<void>,
  warmup: number,
  steps: number,
  onSample?: (ms: number) => void,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
    onSample?.(times[i]);
  }
  return times;
}

export async function benchTransformer(
  backend: BackendName | string,
  opts: TransformerBenchOptions = {},
): Promise<Record<string, unknown>> {
  const choice = await initBackend(backend as BackendName, { quiet: true });
  const hidden = opts.hidden ?? 256;
  const layers = opts.layers ?? 4;
  const heads = opts.heads ?? 8;
  const batch = opts.batch ?? 8;
  // The pure-JS cpu backend needs ~2 minutes per training step at this size, a software webgpu adapter
  // (lavapipe) ~50 s: one timed step there.
  const slow = choice.name === 'cpu' || !!choice.adapter?.software;
  const warmup = opts.warmup ?? (slow ? 0 : 2);
  const steps = opts.steps ?? (slow ? 1 : 5);
  const tokens = 256;
  const textTokens = 16;
  const model = new MaskGitTransformer(
    {
      vocab_size: 1025,
      codebook_size: 1024,
      num_vq_tokens: tokens,
      max_position_embeddings: tokens,
      hidden_size: hidden,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      intermediate_size: 4 * hidden,
      add_cross_attention: true,
      encoder_hidden_size: 256,
      norm_type: 'rmsnorm',
      layer_norm_eps: 1e-6,
      use_normformer: false,
      use_bias: false,
      hidden_dropout: 0,
      attention_dropout: 0,
    },
    { seed: 0 },
  );
  const rng = new Prng(1);
  const ehs = tf.tensor3d(rng.normalArray(batch * textTokens * 256, 1), [batch, textTokens, 256]);
  const vars = [...model.variables.values()];
  const lr = 1e-4;
  const weightDecay = 0.01;
  const adam = tf.train.adam(lr, 0.9, 0.999, 1e-8);

  const forwardTimes = await timeIt(
    async () => {
      const { ids } = maskedBatch(rng, batch, tokens, 1024, model.config.mask_token_id);
      const logits = model.forward(ids, ehs);
      await logits.data();
      tf.dispose([ids, logits]);
    },
    warmup,
    steps,
    (ms) => opts.onSample?.('forward', ms),
  );

  let lastLoss = NaN;
  const gradTimes: number[] = [];
  const optTimes: number[] = [];
  const trainTimes = await timeIt(
    async () => {
      const { ids, labels } = maskedBatch(rng, batch, tokens, 1024, model.config.mask_token_id);
      const t0 = performance.now();
      const { value, grads } = tf.variableGrads(() => {
        const { logits, loss } = model.forwardWithLoss(ids, labels, ehs, undefined, {
          labelSmoothing: 0.1,
          training: true,
        });
        logits.dispose();
        return loss;
      }, vars);
      await value.data();
      const t1 = performance.now();
      tf.tidy(() => {
        for (const v of vars) v.assign(tf.mul(v, 1 - lr * weightDecay)); // decoupled weight decay (AdamW)
      });
      adam.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
      await vars[0].data();
      gradTimes.push(t1 - t0);
      optTimes.push(performance.now() - t1);
      lastLoss = (await value.data())[0];
      tf.dispose([ids, labels, value, ...Object.values(grads)]);
    },
    warmup,
    steps,
    (ms) => opts.onSample?.('train', ms),
  );

  const fwdMs = median(forwardTimes);
  const stepMs = median(trainTimes);
  const reference = PYTORCH_MS_PER_STEP[`${hidden}x${layers}`];
  const result = {
    backend: choice.name,
    ...(choice.adapter
      ? { adapter: `${choice.adapter.description}${choice.adapter.software ? ' (software)' : ''}` }
      : {}),
    config: {
      hidden,
      layers,
      heads,
      batch,
      imageTokens: tokens,
      textTokens,
      textDim: 256,
      params: model.parameterCount(),
    },
    // Medians; `bestMs` (fastest sample) is the better estimate when other work shares the CPU.
    forward: {
      msPerBatch: Math.round(fwdMs),
      tokensPerSec: Math.round((batch * tokens * 1000) / fwdMs),
      bestMs: Math.round(Math.min(...forwardTimes)),
    },
    trainStep: {
      msPerStep: Math.round(stepMs),
      tokensPerSec: Math.round((batch * tokens * 1000) / stepMs),
      bestMs: Math.round(Math.min(...trainTimes)),
      forwardBackwardMs: Math.round(median(gradTimes.slice(-steps))),
      adamWMs: Math.round(median(optTimes.slice(-steps))),
      loss: lastLoss,
    },
    pytorchReference: reference ? { msPerStep: reference, ratio: +(stepMs / reference).toFixed(2) } : undefined,
    loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
    samples: { forwardMs: forwardTimes.map(Math.round), trainMs: trainTimes.map(Math.round) },
  };
  adam.dispose();
  ehs.dispose();
  model.dispose();
  return result;
}

// Standalone: node --import tsx bench/models-transformer.ts [backend]
// (By file name: bundled into bench/device's main.mjs, every module's import.meta.url is the bundle's.)
if (/[\\/]models-transformer\.ts$/.test(process.argv[1] ?? '')) {
  const backend = process.argv[2] ?? 'wasm';
  console.log(JSON.stringify(await benchTransformer(backend), null, 2));
}
