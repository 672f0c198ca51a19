// T5 encoder (Hugging Face `T5EncoderModel`), v1.0 and v1.1 variants: RMS norms, relative position
// buckets (bias table in layer 0, shared by every layer), unscaled dot-product attention, no biases, and a
// ReLU or gated-GELU feed-forward. Loads HF checkpoints by name.
import * as tf from '@tensorflow/tfjs';
import { activation } from '../layers/activations.ts';
import { attention, paddingBias } from '../layers/attention.ts';
import { linear } from '../layers/linear.ts';
import { loadModelFiles, saveModelFiles, type ModelFilesOptions } from '../layers/model-files.ts';
import { rmsNorm } from '../layers/norms.ts';
import { ParamStore } from '../layers/params.ts';
import { Prng } from '../layers/prng.ts';

export interface T5Config {
  vocab_size: number;
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_layers: number;
  num_heads: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  layer_norm_epsilon: number;
  /** 'relu' (v1.0) or 'gated-gelu' (v1.1); any '[gated-]<act>'. */
  feed_forward_proj: string;
  pad_token_id: number;
  eos_token_id: number;
}

/** HF T5Config defaults (t5-small). */
export const T5_DEFAULTS: T5Config = {
  vocab_size: 32128,
  d_model: 512,
  d_kv: 64,
  d_ff: 2048,
  num_layers: 6,
  num_heads: 8,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  layer_norm_epsilon: 1e-6,
  feed_forward_proj: 'relu',
  pad_token_id: 0,
  eos_token_id: 1,
};

export function t5Config(partial: Partial<T5Config> & Record<string, unknown> = {}): T5Config {
  const cfg = { ...T5_DEFAULTS };
  for (const k of Object.keys(T5_DEFAULTS) as (keyof T5Config)[]) {
    if (partial[k] !== undefined && partial[k] !== null) (cfg as Record<string, unknown>)[k] = partial[k];
  }
  return cfg;
}

/** Gating and activation of the feed-forward, as HF parses `feed_forward_proj` ("gated-gelu" -> gelu_new). */
function ffnKind(proj: string): { gated: boolean; act: string } {
  const parts = proj.split('-');
  const gated = parts[0] === 'gated';
  if (parts.length > 2 || (parts.length === 2 && !gated)) throw new Error(`bad feed_forward_proj '${proj}'`);
  let act = parts[parts.length - 1];
  if (act === 'gelu' && gated) act = 'gelu_new';
  return { gated, act };
}

/**
 * Bidirectional relative position bucket of (key − query), computed in float32 like HF's
 * `_relative_position_bucket`: half the buckets per direction, exact below num/4, log-spaced up to max_distance.
 */
export function relativePositionBucket(relative: number, numBuckets: number, maxDistance: number): number {
  const f = Math.fround;
  const half = Math.floor(numBuckets / 2);
  let bucket = relative > 0 ? half : 0;
  const n = Math.abs(relative);
  const maxExact = Math.floor(half / 2);
  if (n < maxExact) return bucket + n;
  const ratio = f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact)));
  const large = maxExact + Math.trunc(f(ratio * (half - maxExact)));
  bucket += Math.min(large, half - 1);
  return bucket;
}

export interface T5Output {
  /** [B, L, d_model] after the final RMS norm (padded positions hold values too). */
  lastHiddenState: tf.Tensor3D;
}

export class T5Encoder {
  readonly config: T5Config;
  readonly params = new ParamStore();
  private readonly ffn: { gated: boolean; act: (x: tf.Tensor) => tf.Tensor };

  /**
   * Builds the encoder with HF's T5 initialisation drawn from a seeded PRNG (deterministic everywhere);
   * `seed: null` leaves zeros (weights about to be loaded).
   */
  /**
   * `seed` draws HF's T5 initialisation (`seed: null` leaves zeros to load weights into); `relativeBiasStd`
   * replaces its std for the relative position bias (d_model^-0.5), for random encoders used as features.
   */
  constructor(
    config: Partial<T5Config> & Record<string, unknown> = {},
    opts: { seed?: number | null; relativeBiasStd?: number } = {},
  ) {
    this.config = t5Config(config);
    const kind = ffnKind(this.config.feed_forward_proj);
    this.ffn = { gated: kind.gated, act: activation(kind.act) };
    this.init(opts.seed === undefined ? 0 : opts.seed, opts.relativeBiasStd);
  }

  private init(seed: number | null, relativeBiasStd?: number): void {
    const c = this.config;
    const rng = seed === null ? undefined : new Prng(seed);
    const inner = c.num_heads * c.d_kv;
    const add = (name: string, shape: number[], std: number) =>
      this.params.add(name, shape, rng ? rng.normalArray(shape[0] * (shape[1] ?? 1), std) : 'zeros');
    add('encoder.embed_tokens.weight', [c.vocab_size, c.d_model], 1);
    for (let i = 0; i < c.num_layers; i++) {
      const b = `encoder.block.${i}.layer`;
      add(`${b}.0.SelfAttention.q.weight`, [inner, c.d_model], (c.d_model * c.d_kv) ** -0.5);
      add(`${b}.0.SelfAttention.k.weight`, [inner, c.d_model], c.d_model ** -0.5);
      add(`${b}.0.SelfAttention.v.weight`, [inner, c.d_model], c.d_model ** -0.5);
      add(`${b}.0.SelfAttention.o.weight`, [c.d_model, inner], inner ** -0.5);
      if (i === 0)
        add(
          `${b}.0.SelfAttention.relative_attention_bias.weight`,
          [c.relative_attention_num_buckets, c.num_heads],
          relativeBiasStd ?? c.d_model ** -0.5,
        );
      this.params.add(`${b}.0.layer_norm.weight`, [c.d_model], 'ones');
      if (this.ffn.gated) {
        add(`${b}.1.DenseReluDense.wi_0.weight`, [c.d_ff, c.d_model], c.d_model ** -0.5);
        add(`${b}.1.DenseReluDense.wi_1.weight`, [c.d_ff, c.d_model], c.d_model ** -0.5);
      } else {
        add(`${b}.1.DenseReluDense.wi.weight`, [c.d_ff, c.d_model], c.d_model ** -0.5);
      }
      add(`${b}.1.DenseReluDense.wo.weight`, [c.d_model, c.d_ff], c.d_ff ** -0.5);
      this.params.add(`${b}.1.layer_norm.weight`, [c.d_model], 'ones');
    }
    this.params.add('encoder.final_layer_norm.weight', [c.d_model], 'ones');
  }

  /**
   * Loads an HF T5 / T5EncoderModel checkpoint: directory (config.json + weights) or weights file. The token
   * embedding may be stored as `shared.weight` and/or `encoder.embed_tokens.weight`; decoder and LM-head
   * tensors of a full T5 checkpoint are skipped.
   */
  static async fromSafetensors(pathOrDir: string, opts: ModelFilesOptions = {}): Promise<T5Encoder> {
    return loadModelFiles(pathOrDir, opts, (config) => new T5Encoder(config, { seed: null }), {
      aliases: { 'shared.weight': 'encoder.embed_tokens.weight' },
      ignore: (n) => n.startsWith('decoder.') || n === 'lm_head.weight',
    });
  }

  /** Writes config.json + model.safetensors with HF names (embedding as `encoder.embed_tokens.weight`). */
  async save(dir: string): Promise<void> {
    const config = {
      architectures: ['T5EncoderModel'],
      model_type: 't5',
      is_gated_act: this.ffn.gated,
      ...this.config,
    };
    await saveModelFiles(dir, config, this.params.record());
  }

  /** Position bias [1, H, L, L] from the layer-0 bucket table. */
  private positionBias(length: number): tf.Tensor {
    const c = this.config;
    const buckets = new Int32Array(length * length);
    for (let q = 0; q < length; q++) {
      for (let k = 0; k < length; k++) {
        buckets[q * length + k] = relativePositionBucket(
          k - q,
          c.relative_attention_num_buckets,
          c.relative_attention_max_distance,
        );
      }
    }
    const table = this.params.get('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
    const values = tf.gather(table, tf.tensor1d(buckets, 'int32')); // [L·L, H]
    return tf.reshape(tf.transpose(tf.reshape(values, [length, length, c.num_heads]), [2, 0, 1]), [
      1,
      c.num_heads,
      length,
      length,
    ]);
  }

  /** Runs the encoder on ids [B, L] (int32) with attention mask [B, L] (1 = real token; default all ones). */
  forward(inputIds: tf.Tensor, attentionMask?: tf.Tensor): T5Output {
    const c = this.config;
    const p = (n: string) => this.params.get(n);
    return tf.tidy(() => {
      const ids = tf.cast(inputIds, 'int32');
      const length = ids.shape[1] as number;
      let bias = this.positionBias(length);
      if (attentionMask) bias = tf.add(bias, paddingBias(attentionMask));
      let x: tf.Tensor = tf.gather(p('encoder.embed_tokens.weight'), ids);
      for (let i = 0; i < c.num_layers; i++) {
        const b = `encoder.block.${i}.layer`;
        const h = rmsNorm(x, p(`${b}.0.layer_norm.weight`), c.layer_norm_epsilon);
        const a = `${b}.0.SelfAttention`;
        const q = linear(h, p(`${a}.q.weight`));
        const k = linear(h, p(`${a}.k.weight`));
        const v = linear(h, p(`${a}.v.weight`));
        x = tf.add(x, linear(attention(q, k, v, c.num_heads, { scale: 1, bias }), p(`${a}.o.weight`)));
        const g = rmsNorm(x, p(`${b}.1.layer_norm.weight`), c.layer_norm_epsilon);
        const d = `${b}.1.DenseReluDense`;
        const y = this.ffn.gated
          ? tf.mul(this.ffn.act(linear(g, p(`${d}.wi_0.weight`))), linear(g, p(`${d}.wi_1.weight`)))
          : this.ffn.act(linear(g, p(`${d}.wi.weight`)));
        x = tf.add(x, linear(y, p(`${d}.wo.weight`)));
      }
      return { lastHiddenState: rmsNorm(x, p('encoder.final_layer_norm.weight'), c.layer_norm_epsilon) as tf.Tensor3D };
    });
  }

  get dModel(): number {
    return this.config.d_model;
  }

  dispose(): void {
    this.params.dispose();
  }
}
