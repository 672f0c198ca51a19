// MaskGIT parallel decoding as open-muse's `MaskGitTransformer.generate2` does it: start fully masked; each
// step predicts every position, samples ids, keeps the known ones, and re-masks the least confident of the new
// ones (confidence = log p + temperature * Gumbel noise) so that floor(N * schedule((s + 1) / T)) stay masked.
//
// All randomness comes from a JS PRNG per image row (seeded from `seed` and the row's index), and sampling
// happens in JS on the logits, so a seed gives the same ids on every backend the logits agree on. Every step
// draws one multinomial uniform and one Gumbel uniform per position (known or not), so the streams never
// drift with what is masked.
import { tf } from '../runtime/backend.ts';
import { readData } from '../runtime/read.ts';
import { assertGpuBufferFits } from '../runtime/webgpu.ts';
import type { TokenModel } from '../models/token-model.ts';
import { maskLenAtStep, maskSchedule } from '../models/schedules.ts';
import { Prng } from '../models/layers/prng.ts';
import { deriveSeed } from '../train/data/random.ts';
import { guidanceAt, temperatureAt, GUIDANCE_SCHEDULES, type GuidanceSchedule } from './schedules.ts';

export interface Conditioning {
  /** Text states [B, L, D] (cross-attention models). */
  hidden?: tf.Tensor3D;
  /** [B, L], 1 = real token. */
  mask?: tf.Tensor2D;
  /** Pooled text [B, P] (add_cond_embeds models). */
  pooled?: tf.Tensor2D;
  /** Class ids [B] (class-conditional models), 0-based. */
  classIds?: tf.Tensor1D;
  /** Low-res token ids [B, n] (super-res models; kept on the unconditional side of guidance too). */
  lowresIds?: tf.Tensor2D;
}

export interface GenerateOptions {
  steps: number;
  guidanceScale: number;
  guidanceSchedule?: GuidanceSchedule;
  /** Default 1 (open-muse generate2): t * (1 - (s + 1) / T). */
  temperature?: number | [number, number];
  /** Mask schedule name (src/models/schedules.ts), default cosine. */
  schedule?: string;
  seed: number;
  cond: Conditioning;
  /** Required when any step's guidance scale is not 1. Batch B, or 1 (repeated for every row). */
  uncond?: Conditioning;
  /** Inpainting: initial ids [B*N] with keep[i]=1 where the given token must stay. */
  init?: { ids: Int32Array; keep: Uint8Array };
  /** Index of this batch's first row in the PRNG streams (so images match however a run is split in batches). */
  firstRow?: number;
  onStep?: (step: number, ids: Int32Array /* current ids, mask token where masked */) => void | Promise<void>;
}

const GUMBEL_EPS = 1e-20;

/** Ids [batch * num_vq_tokens]. */
export async function generate(model: TokenModel, batch: number, opts: GenerateOptions): Promise<Int32Array> {
  const cfg = model.config;
  const n = cfg.num_vq_tokens;
  const codes = cfg.codebook_size;
  const maskId = cfg.mask_token_id;
  const steps = opts.steps;
  if (!Number.isInteger(batch) || batch < 1)
    throw new Error(`generate: batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`generate: steps must be a positive integer, got ${steps}`);
  if (!Number.isFinite(opts.guidanceScale))
    throw new Error(`generate: guidanceScale must be a finite number, got ${opts.guidanceScale}`);
  const gSchedule = opts.guidanceSchedule ?? 'constant';
  if (!GUIDANCE_SCHEDULES.includes(gSchedule))
    throw new Error(`generate: unknown guidanceSchedule '${gSchedule}' (expected ${GUIDANCE_SCHEDULES.join(', ')})`);
  const temperature = opts.temperature ?? 1;
  const temps = typeof temperature === 'number' ? [temperature] : temperature;
  if (temps.length < 1 || temps.length > 2 || temps.some((t) => !Number.isFinite(t) || t < 0)) {
    throw new Error(`generate: temperature must be a number >= 0 or [start, end], got ${JSON.stringify(temperature)}`);
  }
  const sched = maskSchedule(opts.schedule ?? 'cosine');
  const scales = Array.from({ length: steps }, (_, s) => guidanceAt(gSchedule, opts.guidanceScale, s, steps));
  const needUncond = scales.some((g) => g !== 1);
  await checkConditioning(model, opts.cond, batch, 'cond');
  if (needUncond) {
    if (!opts.uncond) {
      throw new Error(
        `generate: guidance scale ${opts.guidanceScale} (${gSchedule}) needs the unconditional conditioning 'uncond'` +
          (cfg.num_classes ? ' (class-conditional models have no unconditional class: use guidance 1)' : ''),
      );
    }
    await checkConditioning(model, opts.uncond, batch, 'uncond');
  }
  const ids = new Int32Array(batch * n).fill(maskId);
  if (opts.init) {
    if (opts.init.ids.length !== batch * n || opts.init.keep.length !== batch * n) {
      throw new Error(
        `generate: init.ids and init.keep must have batch * num_vq_tokens = ${batch * n} entries, got ${opts.init.ids.length} and ${opts.init.keep.length}`,
      );
    }
    for (let i = 0; i < ids.length; i++) {
      if (!opts.init.keep[i]) continue;
      const v = opts.init.ids[i];
      if (!Number.isInteger(v) || v < 0 || v >= codes)
        throw new Error(`generate: init.ids[${i}] = ${v} is kept but is not a codebook id in [0, ${codes})`);
      ids[i] = v;
    }
  }
  // On webgpu the logits of the batch (twice with guidance: conditional + unconditional rows) must fit one buffer.
  assertGpuBufferFits(
    n * cfg.vocab_size * 4,
    batch * (needUncond ? 2 : 1),
    `the logits of ${batch} images x ${n} tokens`,
    'the sampling batch (muse-sample --batch)',
  );
  const rngs = Array.from(
    { length: batch },
    (_, b) => new Prng(deriveSeed(opts.seed >>> 0, 0x5a4d, (opts.firstRow ?? 0) + b)),
  );
  const uncond = needUncond ? repeatConditioning(opts.uncond!, batch) : undefined;
  // Self-conditioning models (config self_conditioning) take the previous step's prediction as input.
  const selfCond = 'self_conditioning' in cfg && cfg.self_conditioning;
  let previous: tf.Tensor | undefined;
  try {
    const probs = new Float64Array(codes);
    for (let s = 0; s < steps; s++) {
      const g = scales[s];
      const logits = await guidedLogits(model, ids, batch, g, opts.cond, uncond, previous);
      if (selfCond) {
        previous?.dispose();
        previous = tf.tidy(() => tf.softmax(tf.tensor3d(logits, [batch, n, codes])));
      }
      const t = temperatureAt(temperature, s, steps);
      const last = s === steps - 1;
      for (let b = 0; b < batch; b++) {
        const rng = rngs[b];
        const conf = new Float64Array(n);
        const sampled = new Int32Array(n);
        let unknown = 0;
        for (let i = 0; i < n; i++) {
          const p = sampleRow(logits, (b * n + i) * codes, codes, probs, rng.uniform());
          const u = rng.uniform();
          const known = ids[b * n + i] !== maskId;
          if (known) {
            sampled[i] = ids[b * n + i];
            conf[i] = Infinity;
          } else {
            unknown++;
            sampled[i] = p.id;
            conf[i] = Math.log(p.prob) + t * -Math.log(-Math.log(Math.max(u, GUMBEL_EPS)));
          }
        }
        if (unknown === 0) continue;
        // Tokens left masked after this step (open-muse: at least 1, at most unknown - 1; the last step fills all).
        const maskLen = last ? 0 : Math.max(1, Math.min(unknown - 1, maskLenAtStep(n, s, steps, sched)));
        const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => conf[x] - conf[y] || x - y);
        for (let i = 0; i < n; i++) ids[b * n + i] = sampled[i];
        for (let k = 0; k < maskLen; k++) ids[b * n + order[k]] = maskId;
      }
      if (opts.onStep) await opts.onStep(s, ids.slice());
    }
  } finally {
    if (uncond && uncond !== opts.uncond) disposeConditioning(uncond, opts.uncond!);
    previous?.dispose();
  }
  return ids;
}

/** Softmax over one row of logits (float64) and one multinomial draw by inverse CDF with uniform `u`. */
function sampleRow(
  logits: Float32Array,
  off: number,
  size: number,
  probs: Float64Array,
  u: number,
): { id: number; prob: number } {
  let max = -Infinity;
  for (let c = 0; c < size; c++) if (logits[off + c] > max) max = logits[off + c];
  let sum = 0;
  for (let c = 0; c < size; c++) {
    const e = Math.exp(logits[off + c] - max);
    probs[c] = e;
    sum += e;
  }
  const target = u * sum;
  let acc = 0;
  let id = -1;
  for (let c = 0; c < size; c++) {
    if (probs[c] === 0) continue;
    id = c;
    acc += probs[c];
    if (acc > target) break;
  }
  return { id, prob: probs[id] / sum };
}

/** Logits [B*N*codebook] of uncond + g (cond - uncond); one forward pass when g is 0 or 1. */
async function guidedLogits(
  model: TokenModel,
  ids: Int32Array,
  batch: number,
  g: number,
  cond: Conditioning,
  uncond: Conditioning | undefined,
  selfCond?: tf.Tensor,
): Promise<Float32Array> {
  const n = model.config.num_vq_tokens;
  const codes = model.config.codebook_size;
  const input = tf.tensor2d(ids, [batch, n], 'int32');
  try {
    const out = tf.tidy(() => {
      const run = (c: Conditioning) => {
        const logits = model.forward(input, c.hidden, c.mask, {
          condEmbeds: c.pooled,
          classIds: c.classIds,
          lowresIds: c.lowresIds,
          selfCond,
        });
        return tf.slice(logits, [0, 0, 0], [batch, n, codes]);
      };
      if (g === 1) return run(cond);
      if (g === 0) return run(uncond!);
      const u = run(uncond!);
      return tf.add(u, tf.mul(tf.sub(run(cond), u), g));
    });
    try {
      return (await out.data()) as Float32Array;
    } finally {
      out.dispose();
    }
  } finally {
    input.dispose();
  }
}

async function checkConditioning(model: TokenModel, c: Conditioning, batch: number, what: string): Promise<void> {
  const cfg = model.config;
  const allowed = what === 'uncond' ? [1, batch] : [batch];
  const check = (t: tf.Tensor | undefined, name: string) => {
    if (t && !allowed.includes(t.shape[0]))
      throw new Error(`generate: ${what}.${name} has batch ${t.shape[0]}, expected ${allowed.join(' or ')}`);
  };
  if (cfg.add_cross_attention) {
    if (!c.hidden)
      throw new Error(`generate: the model has cross-attention, so ${what}.hidden (text states [B, L, D]) is required`);
    if (c.hidden.shape[2] !== cfg.encoder_hidden_size) {
      throw new Error(
        `generate: ${what}.hidden has width ${c.hidden.shape[2]}, the model expects encoder_hidden_size ${cfg.encoder_hidden_size}`,
      );
    }
    if (c.mask && (c.mask.shape[0] !== c.hidden.shape[0] || c.mask.shape[1] !== c.hidden.shape[1])) {
      throw new Error(
        `generate: ${what}.mask shape [${c.mask.shape}] does not match ${what}.hidden [${c.hidden.shape.slice(0, 2)}]`,
      );
    }
  }
  if (cfg.add_cond_embeds) {
    if (!c.pooled)
      throw new Error(`generate: the model uses pooled text (add_cond_embeds), so ${what}.pooled is required`);
    if (c.pooled.shape[1] !== cfg.cond_embed_dim)
      throw new Error(
        `generate: ${what}.pooled has width ${c.pooled.shape[1]}, expected cond_embed_dim ${cfg.cond_embed_dim}`,
      );
  }
  if (cfg.num_classes) {
    if (!c.classIds) throw new Error(`generate: the model is class-conditional, so ${what}.classIds is required`);
    const ids = await readData<'int32'>(c.classIds);
    // The null class (id num_classes) is the unconditional side of guidance for models trained with it.
    const limit = cfg.num_classes + ('null_class' in cfg && cfg.null_class ? 1 : 0);
    for (const v of ids)
      if (!Number.isInteger(v) || v < 0 || v >= limit)
        throw new Error(`generate: class id ${v} is outside [0, ${limit})`);
  } else if (c.classIds) {
    throw new Error(`generate: ${what}.classIds given but the model has no classes (num_classes not set)`);
  }
  check(c.hidden, 'hidden');
  check(c.mask, 'mask');
  check(c.pooled, 'pooled');
  check(c.classIds, 'classIds');
  if ('num_lowres_tokens' in cfg) {
    if (!c.lowresIds)
      throw new Error(
        `generate: a super-res model needs ${what}.lowresIds (the base model's tokens [B, ${cfg.num_lowres_tokens}])`,
      );
    if (c.lowresIds.shape[0] !== batch || c.lowresIds.shape[1] !== cfg.num_lowres_tokens) {
      throw new Error(
        `generate: ${what}.lowresIds has shape [${c.lowresIds.shape}], expected [${batch}, ${cfg.num_lowres_tokens}]`,
      );
    }
  } else if (c.lowresIds) {
    throw new Error(`generate: ${what}.lowresIds given but the model is not a super-res model`);
  }
}

/** Repeats a batch-1 conditioning to `batch` rows (new tensors), or returns it as it is. */
function repeatConditioning(c: Conditioning, batch: number): Conditioning {
  const rep = <T extends tf.Tensor>(t: T | undefined): T | undefined =>
    t && t.shape[0] === 1 && batch > 1 ? (tf.tile(t, [batch, ...t.shape.slice(1).map(() => 1)]) as T) : t;
  const hidden = rep(c.hidden);
  const mask = rep(c.mask);
  const pooled = rep(c.pooled);
  const classIds = rep(c.classIds);
  if (hidden === c.hidden && mask === c.mask && pooled === c.pooled && classIds === c.classIds) return c;
  return { hidden, mask, pooled, classIds, lowresIds: c.lowresIds };
}

function disposeConditioning(c: Conditioning, original: Conditioning): void {
  for (const k of ['hidden', 'mask', 'pooled', 'classIds'] as const) if (c[k] && c[k] !== original[k]) c[k]!.dispose();
}
