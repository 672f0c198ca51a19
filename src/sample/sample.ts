// Programmatic sampling: checkpoint + prompts (or class ids) -> PNGs. Used by `muse-sample` and the demo.
// Image i (prompt i / num, copy i % num) draws from PRNG stream i of the seed, so an image does not depend on
// the batch size or on which other prompts were asked for.
import sharp from 'sharp';
import { tf } from '../runtime/backend.ts';
import { generate, type Conditioning } from './generate.ts';
import { classConditioning, disposeConditioning, encodePrompts } from './conditioning.ts';
import { idsToPngs } from './images.ts';
import { loadCheckpoint, type LoadedCheckpoint } from './load.ts';
import type { GuidanceSchedule } from './schedules.ts';
import { imageToFloats } from '../image/to-floats.ts';

export interface SampleOptions {
  /** Checkpoint or run directory, or an already loaded checkpoint (not disposed by sample()). */
  checkpoint: string | LoadedCheckpoint;
  /** Text models; default: sampling.json's prompts. */
  prompts?: string[];
  /** Class-conditional models. */
  classIds?: number[];
  /** Unconditional side of guidance; default the empty caption. */
  negativePrompt?: string;
  steps?: number;
  /** Default 4 for text models; class-conditional models support only 1 (no unconditional class). */
  guidance?: number;
  guidanceSchedule?: GuidanceSchedule;
  temperature?: number | [number, number];
  schedule?: string;
  seed?: number;
  /** Images per prompt / class. */
  num?: number;
  /** Use EMA weights when present (default true). */
  ema?: boolean;
  /** Also return each step's state as PNGs (still-masked tokens painted grey). */
  saveIntermediate?: boolean;
  /** Inpainting: the image to start from and a mask (white = regenerate, black = keep), any size. */
  init?: { image: Buffer; mask: Buffer };
  /** Images generated together (default 8). */
  batchSize?: number;
  /** Called after every decoding step with the batch's current images (masked tokens grey): for streaming. */
  onStep?: (e: { step: number; steps: number; first: number; pngs: Buffer[] }) => void | Promise<void>;
  /**
   * A super-res checkpoint or run (stage superres512): each base image's tokens condition it, and the image
   * returned is its high-res decode (the base one is kept in `base`).
   */
  superres?: string | LoadedCheckpoint;
}

export interface SampledImage {
  /** The prompt, or `class N`. */
  prompt: string;
  classId?: number;
  png: Buffer;
  ids: Int32Array;
  /** One PNG per step (saveIntermediate). */
  intermediate?: Buffer[];
  /** With `superres`: the base model's image and tokens (png / ids above are the super-res ones). */
  base?: { png: Buffer; ids: Int32Array };
}

export interface SampleResult {
  images: SampledImage[];
  checkpointDir: string;
  weights: 'ema' | 'raw';
}

export async function sample(opts: SampleOptions): Promise<SampleResult> {
  const owned = typeof opts.checkpoint === 'string';
  const ck =
    typeof opts.checkpoint === 'string' ? await loadCheckpoint(opts.checkpoint, { ema: opts.ema }) : opts.checkpoint;
  let sr: LoadedCheckpoint | undefined;
  try {
    sr = typeof opts.superres === 'string' ? await loadCheckpoint(opts.superres, { ema: opts.ema }) : opts.superres;
    if (sr) checkSuperRes(ck, sr);
    return await sampleLoaded(ck, opts, sr);
  } finally {
    if (owned) ck.dispose();
    if (typeof opts.superres === 'string') sr?.dispose();
  }
}

/** The super-res checkpoint takes the base checkpoint's tokens. */
function checkSuperRes(base: LoadedCheckpoint, sr: LoadedCheckpoint): void {
  const c = sr.transformer.config;
  if (!('num_lowres_tokens' in c))
    throw new Error(`--superres ${sr.dir}: not a super-res checkpoint (its model is not the superres512 stage's)`);
  const n = base.transformer.config.num_vq_tokens;
  if (c.num_lowres_tokens !== n)
    throw new Error(
      `--superres ${sr.dir}: it takes ${c.num_lowres_tokens} low-res tokens, the base checkpoint makes ${n}`,
    );
  if (base.transformer.config.codebook_size > c.lowres_codebook_size) {
    throw new Error(
      `--superres ${sr.dir}: its low-res codebook (${c.lowres_codebook_size}) is smaller than the base model's (${base.transformer.config.codebook_size})`,
    );
  }
  if (!sr.text) throw new Error(`--superres ${sr.dir}: sampling.json names no text encoder`);
}

async function sampleLoaded(ck: LoadedCheckpoint, opts: SampleOptions, sr?: LoadedCheckpoint): Promise<SampleResult> {
  const cfg = ck.transformer.config;
  const classModel = !!cfg.num_classes;
  // Class models trained with class dropout guide against the null class (id num_classes).
  const nullClass = classModel && 'null_class' in cfg && cfg.null_class;
  const num = opts.num ?? 1;
  const batchSize = opts.batchSize ?? 8;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(num) || num < 1) throw new Error(`--num must be a positive integer, got ${num}`);
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new Error(`--seed must be an integer in [0, 2^32), got ${seed}`);

  let labels: string[];
  let classes: number[] | undefined;
  if (classModel) {
    if (opts.prompts?.length)
      throw new Error(`this checkpoint is class-conditional (${cfg.num_classes} classes): use --class, not prompts`);
    if (!opts.classIds?.length)
      throw new Error(`this checkpoint is class-conditional (${cfg.num_classes} classes): give at least one --class`);
    for (const c of opts.classIds)
      if (!Number.isInteger(c) || c < 0 || c >= cfg.num_classes!)
        throw new Error(`--class ${c}: expected an integer in [0, ${cfg.num_classes})`);
    if (opts.negativePrompt !== undefined) throw new Error('--negative-prompt needs a text-conditioned checkpoint');
    if (opts.guidance !== undefined && opts.guidance !== 1 && !nullClass) {
      throw new Error(
        `--guidance ${opts.guidance}: this class-conditional model has no null class (trained without class dropout, as in open-muse), so only guidance 1 is supported`,
      );
    }
    classes = opts.classIds;
    labels = classes.map((c) => `class ${c}`);
  } else {
    if (opts.classIds?.length)
      throw new Error('--class needs a class-conditional checkpoint; this one is text-conditioned');
    labels = opts.prompts?.length ? opts.prompts : ck.info.prompts;
    if (!labels.length) throw new Error('no prompts: give --prompt/--prompts (sampling.json lists none)');
  }
  const guidance = opts.guidance ?? (classModel ? 1 : 4);

  const jobs = labels.flatMap((label, p) => Array.from({ length: num }, () => ({ label, classId: classes?.[p] })));
  const n = cfg.num_vq_tokens;
  const init = opts.init ? await inpaintInit(ck, opts.init) : undefined;
  const uncond: Conditioning | undefined = nullClass
    ? classConditioning([cfg.num_classes!])
    : !classModel && ck.text
      ? encodePrompts(ck.text, [opts.negativePrompt ?? ''])
      : undefined;
  const images: SampledImage[] = [];
  try {
    for (let start = 0; start < jobs.length; start += batchSize) {
      const batch = jobs.slice(start, start + batchSize);
      const cond = classModel
        ? classConditioning(batch.map((j) => j.classId!))
        : encodePrompts(
            ck.text!,
            batch.map((j) => j.label),
          );
      const steps: Buffer[][] = batch.map(() => []);
      try {
        const ids = await generate(ck.transformer, batch.length, {
          steps: opts.steps ?? 12,
          guidanceScale: guidance,
          guidanceSchedule: opts.guidanceSchedule,
          temperature: opts.temperature,
          schedule: opts.schedule,
          seed,
          cond,
          uncond,
          firstRow: start,
          init: init && { ids: repeat(init.ids, batch.length), keep: repeat(init.keep, batch.length) },
          onStep:
            opts.saveIntermediate || opts.onStep
              ? async (s, cur) => {
                  const pngs = await idsToPngs(ck.vq, cur, batch.length, cfg.mask_token_id);
                  if (opts.saveIntermediate) pngs.forEach((png, b) => steps[b].push(png));
                  await opts.onStep?.({ step: s, steps: opts.steps ?? 12, first: start, pngs });
                }
              : undefined,
        });
        const pngs = await idsToPngs(ck.vq, ids, batch.length);
        const high = sr
          ? await superResolve(
              sr,
              ids,
              batch.map((j) => j.label),
              { ...opts, guidance, seed, firstRow: start },
            )
          : undefined;
        batch.forEach((j, b) =>
          images.push({
            prompt: j.label,
            ...(j.classId !== undefined ? { classId: j.classId } : {}),
            png: high ? high.pngs[b] : pngs[b],
            ids: high ? high.ids.slice(b * high.n, (b + 1) * high.n) : ids.slice(b * n, (b + 1) * n),
            ...(opts.saveIntermediate ? { intermediate: steps[b] } : {}),
            ...(high ? { base: { png: pngs[b], ids: ids.slice(b * n, (b + 1) * n) } } : {}),
          }),
        );
      } finally {
        disposeConditioning(cond);
      }
    }
  } finally {
    disposeConditioning(uncond);
  }
  return { images, checkpointDir: ck.dir, weights: ck.weights };
}

/** The super-res model's tokens and images for base tokens `lowIds` [B * n_low] and their prompts. */
async function superResolve(
  sr: LoadedCheckpoint,
  lowIds: Int32Array,
  prompts: string[],
  o: SampleOptions & { guidance: number; seed: number; firstRow: number },
) {
  const b = prompts.length;
  const cfg = sr.transformer.config as { num_lowres_tokens: number; num_vq_tokens: number };
  const lowres = tf.tensor2d(lowIds, [b, cfg.num_lowres_tokens], 'int32');
  const cond: Conditioning = { ...encodePrompts(sr.text!, prompts), lowresIds: lowres };
  // Guidance drops the text only: the low-res tokens stay on both sides.
  const uncond: Conditioning | undefined =
    o.guidance !== 1 ? { ...encodePrompts(sr.text!, [o.negativePrompt ?? '']), lowresIds: lowres } : undefined;
  try {
    const ids = await generate(sr.transformer, b, {
      steps: o.steps ?? 12,
      guidanceScale: o.guidance,
      guidanceSchedule: o.guidanceSchedule,
      temperature: o.temperature,
      schedule: o.schedule,
      seed: o.seed,
      cond,
      uncond,
      firstRow: o.firstRow,
    });
    return { ids, n: cfg.num_vq_tokens, pngs: await idsToPngs(sr.vq, ids, b) };
  } finally {
    disposeConditioning(cond);
    if (uncond) disposeConditioning({ ...uncond, lowresIds: undefined });
  }
}

function repeat<T extends Int32Array | Uint8Array>(a: T, times: number): T {
  const out = new (a.constructor as new (n: number) => T)(a.length * times);
  for (let i = 0; i < times; i++) out.set(a, i * a.length);
  return out;
}

/** Tokens of the init image (resized/cropped to the model resolution) and which of them to keep (mask cell mean < 50%). */
async function inpaintInit(
  ck: LoadedCheckpoint,
  init: { image: Buffer; mask: Buffer },
): Promise<{ ids: Int32Array; keep: Uint8Array }> {
  const res = ck.vq.config.resolution;
  const side = ck.vq.latentSize;
  // decoded as tokenize and VQGAN training decode images (src/image/to-floats.ts)
  const pixels = await imageToFloats(init.image, res, { what: '--init-image' });
  const mask = await sharp(init.mask)
    .removeAlpha()
    .greyscale()
    .resize(res, res, { fit: 'cover' })
    .raw()
    .toBuffer()
    .catch((err: Error) => {
      throw new Error(`--mask: cannot decode (${err.message})`);
    });
  const ids = tf.tidy(() => {
    const px = tf.tensor4d(pixels, [1, res, res, 3]);
    return ck.vq.encode(px);
  });
  const tokens = new Int32Array(await ids.data());
  ids.dispose();
  const f = res / side;
  const keep = new Uint8Array(side * side);
  for (let ty = 0; ty < side; ty++) {
    for (let tx = 0; tx < side; tx++) {
      let sum = 0;
      for (let y = ty * f; y < (ty + 1) * f; y++) for (let x = tx * f; x < (tx + 1) * f; x++) sum += mask[y * res + x];
      keep[ty * side + tx] = sum / (f * f) < 128 ? 1 : 0;
    }
  }
  if (ck.transformer.config.codebook_size < ck.vq.config.numEmbeddings) {
    for (let i = 0; i < tokens.length; i++)
      if (tokens[i] >= ck.transformer.config.codebook_size)
        throw new Error(`--init-image: token ${tokens[i]} is outside the transformer's codebook`);
  }
  return { ids: tokens, keep };
}
