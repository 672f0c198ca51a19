// Text encoders for the tokenize stage, by spec (parseTextEncoderSpec, the one parser):
//   'byt5-tiny'  built-in: byte tokenizer + a small T5 encoder from a fixed seed (id 'byt5-tiny-local-seed0')
//   't5:DIR'     HF T5 / T5EncoderModel directory (config.json, safetensors, tokenizer.json)
//   'clip:DIR'   HF CLIP text directory (config.json, safetensors, tokenizer.json); hidden = penultimate
//                layer (what Stable Diffusion / aMUSEd condition on), pooled = projected text_embeds
import * as tf from '@tensorflow/tfjs';
import path from 'node:path';
import { ClipTextEncoder } from './clip.ts';
import { T5Encoder, type T5Config } from './t5.ts';
import { ByteTokenizer, loadClipTokenizer, loadT5Tokenizer, type TextTokenizer } from './tokenizer.ts';

export interface EncodedText {
  /** Token ids of each text at its real length (specials included). */
  ids: Int32Array[];
  lengths: number[];
  /** [B, L, D] hidden states, L = the batch's padded length; row i is meaningful up to lengths[i]. */
  hidden: tf.Tensor3D;
  /** [B, P] pooled vector (CLIP text_embeds); absent for T5. */
  pooled?: tf.Tensor2D;
}

export interface TextEncoder {
  /** Names the model (and its weights' origin) in cache manifests; safe as a directory name. */
  readonly id: string;
  readonly kind: 't5' | 'clip' | 't5+clip';
  readonly tokenizer: TextTokenizer;
  /** Hidden size D. */
  readonly dim: number;
  readonly pooledDim?: number;
  encode(texts: string[]): EncodedText;
  dispose(): void;
}

export interface TextEncoderOptions {
  /** Token limit (default: tokenizer's: 77 CLIP, 128 T5, 256 bytes). */
  maxLength?: number;
  /** CLIP hidden states: 'penultimate' (default) or 'last' (final-norm output). */
  clipLayer?: 'penultimate' | 'last';
}

/** The built-in default: ByT5-sized vocabulary, 2 layers of width 256, initialised from seed 0. */
export const BYT5_TINY_CONFIG: Partial<T5Config> = {
  vocab_size: 384,
  d_model: 256,
  d_kv: 64,
  num_heads: 4,
  d_ff: 512,
  num_layers: 2,
  feed_forward_proj: 'gated-gelu',
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  layer_norm_epsilon: 1e-6,
  pad_token_id: 0,
  eos_token_id: 1,
};
export const BYT5_TINY_ID = 'byt5-tiny-local-seed0';

/**
 * Std of the built-in encoder's relative position bias. With HF's init (d_model^-0.5 = 0.06) a random T5 attends
 * almost uniformly, so each byte's state is its own embedding plus the sentence average: "red" in "a red circle
 * on a blue background" and in "a blue circle on a red background" have cosine 0.9999, and a model conditioned
 * on these states cannot tell which object a colour belongs to. A bias of std 4 makes every head's random attention
 * prefer some offsets (local), so the states carry their neighbourhood (cosine 0.71 there; test/text-encoders).
 */
export const BYT5_TINY_RELATIVE_BIAS_STD = 4;

/** The built-in encoder (no files). */
export function byt5Tiny(opts: TextEncoderOptions = {}): TextEncoder {
  const model = new T5Encoder(BYT5_TINY_CONFIG, { seed: 0, relativeBiasStd: BYT5_TINY_RELATIVE_BIAS_STD });
  return t5Handle(BYT5_TINY_ID, model, new ByteTokenizer({ maxLength: opts.maxLength }));
}

/**
 * What a text-encoder spec (`--text`, `model.text_encoder`, sampling.json `text_encoder`, a queue job's `text`)
 * names. The ONE parser of that spec: every stage asks it, so a name that works in one place works in all.
 * Built-in: 'byt5-tiny' or its id 'byt5-tiny-local-seed0'; else 't5:DIR' or 'clip:DIR'.
 */
export type TextEncoderSpec = { kind: 'builtin' } | { kind: 't5' | 'clip'; dir: string };

export function parseTextEncoderSpec(spec: string): TextEncoderSpec {
  const s = spec.trim();
  if (s === 'byt5-tiny' || s === BYT5_TINY_ID) return { kind: 'builtin' };
  if (s === 'byt5-tiny-seed0')
    throw new Error(
      "text encoder 'byt5-tiny-seed0' was replaced by 'byt5-tiny' (byt5-tiny-local-seed0, whose random attention is local); re-run muse-data tokenize with --text byt5-tiny",
    );
  const m = /^(t5|clip):(.+)$/.exec(s);
  if (!m) throw new Error(`unknown text encoder '${spec}' (expected byt5-tiny, t5:DIR or clip:DIR)`);
  return { kind: m[1] as 't5' | 'clip', dir: m[2] };
}

/** The specs of a comma-separated list: one encoder, or two (combined T5 + CLIP conditioning). */
export function textEncoderSpecs(spec: string): string[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * A spec (or comma-separated list) as another process or folder must find it: the built-in by its name, exactly
 * as given (its id names the cache), folders as absolute paths.
 */
export function absoluteTextEncoderSpec(spec: string): string {
  return textEncoderSpecs(spec)
    .map((s) => {
      const p = parseTextEncoderSpec(s);
      return p.kind === 'builtin' ? s : `${p.kind}:${path.resolve(p.dir)}`;
    })
    .join(',');
}

/**
 * The spec with each folder replaced by `fn(folder)` (one spec, or comma-separated ones); built-in names are kept.
 * How a checkpoint's sampling.json names its copies of the encoders relative to itself, and resolves them back.
 */
export async function mapTextEncoderFolders(
  spec: string,
  fn: (dir: string) => string | Promise<string>,
): Promise<string> {
  const out: string[] = [];
  for (const s of textEncoderSpecs(spec)) {
    const p = parseTextEncoderSpec(s);
    out.push(p.kind === 'builtin' ? s : `${p.kind}:${await fn(p.dir)}`);
  }
  return out.join(',');
}

export async function loadTextEncoder(spec: string, opts: TextEncoderOptions = {}): Promise<TextEncoder> {
  const p = parseTextEncoderSpec(spec);
  if (p.kind === 'builtin') return byt5Tiny(opts);
  const name = safeName(path.basename(path.resolve(p.dir)));
  if (p.kind === 't5') {
    const tokenizer = await loadT5Tokenizer(p.dir, { maxLength: opts.maxLength });
    return t5Handle(`t5-${name}`, await T5Encoder.fromSafetensors(p.dir), tokenizer);
  }
  const tokenizer = await loadClipTokenizer(p.dir, { maxLength: opts.maxLength });
  const model = await ClipTextEncoder.fromSafetensors(p.dir);
  const layer = opts.clipLayer ?? 'penultimate';
  return clipHandle(`clip-${name}${layer === 'last' ? '-last' : ''}`, model, tokenizer, layer);
}

function t5Handle(id: string, model: T5Encoder, tokenizer: TextTokenizer): TextEncoder {
  return {
    id,
    kind: 't5',
    tokenizer,
    dim: model.dModel,
    encode(texts) {
      const b = tokenizer.batch(texts);
      const hidden = tf.tidy(() => {
        const ids = tf.tensor2d(b.ids, [b.batch, b.length], 'int32');
        const mask = tf.tensor2d(b.mask, [b.batch, b.length], 'int32');
        return model.forward(ids, mask).lastHiddenState;
      });
      return { ids: rowsOf(b.ids, b.length, b.lengths), lengths: b.lengths, hidden };
    },
    dispose: () => model.dispose(),
  };
}

function clipHandle(
  id: string,
  model: ClipTextEncoder,
  tokenizer: TextTokenizer,
  layer: 'penultimate' | 'last',
): TextEncoder {
  return {
    id,
    kind: 'clip',
    tokenizer,
    dim: model.dModel,
    pooledDim: model.config.projection_dim || model.dModel,
    encode(texts) {
      const b = tokenizer.batch(texts);
      const out = tf.tidy(() => {
        const ids = tf.tensor2d(b.ids, [b.batch, b.length], 'int32');
        const mask = tf.tensor2d(b.mask, [b.batch, b.length], 'int32');
        const o = model.forward(ids, mask);
        return {
          hidden: layer === 'last' ? o.lastHiddenState : o.penultimateHiddenState,
          pooled: o.textEmbeds ?? o.pooled,
        };
      });
      return { ids: rowsOf(b.ids, b.length, b.lengths), lengths: b.lengths, hidden: out.hidden, pooled: out.pooled };
    },
    dispose: () => model.dispose(),
  };
}

function rowsOf(ids: Int32Array, length: number, lengths: number[]): Int32Array[] {
  return lengths.map((n, i) => ids.slice(i * length, i * length + n));
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_');
}
