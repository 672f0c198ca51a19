// CLIP text encoder with projection (Hugging Face `CLIPTextModelWithProjection`): token + position
// embeddings, pre-LN layers with causal + padding masked attention and a quick-GELU MLP, final layer norm,
// pooled output at the first EOS position, bias-free text projection.
import * as tf from '@tensorflow/tfjs';
import { activation } from '../layers/activations.ts';
import { attention, causalBias, paddingBias } from '../layers/attention.ts';
import { linear } from '../layers/linear.ts';
import { loadModelFiles, saveModelFiles, type ModelFilesOptions } from '../layers/model-files.ts';
import { layerNorm } from '../layers/norms.ts';
import { ParamStore } from '../layers/params.ts';
import { Prng } from '../layers/prng.ts';

export interface ClipTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  /** 0 = no text_projection. */
  projection_dim: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: string;
  layer_norm_eps: number;
  pad_token_id: number;
  bos_token_id: number;
  eos_token_id: number;
}

/** HF CLIPTextConfig defaults (ViT-B/32 text tower). */
export const CLIP_TEXT_DEFAULTS: ClipTextConfig = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  projection_dim: 512,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  pad_token_id: 1,
  bos_token_id: 49406,
  eos_token_id: 49407,
};

/** Accepts a CLIPTextConfig or a full CLIPConfig (its `text_config`, projection_dim from the top level). */
export function clipTextConfig(raw: Record<string, unknown> = {}): ClipTextConfig {
  const text = (raw.text_config as Record<string, unknown> | undefined) ?? raw;
  const merged: Record<string, unknown> = { ...CLIP_TEXT_DEFAULTS };
  for (const k of Object.keys(CLIP_TEXT_DEFAULTS)) if (text[k] !== undefined && text[k] !== null) merged[k] = text[k];
  if (raw.text_config && raw.projection_dim !== undefined) merged.projection_dim = raw.projection_dim;
  return merged as unknown as ClipTextConfig;
}

export interface ClipTextOutput {
  /** [B, L, D] after the final layer norm. */
  lastHiddenState: tf.Tensor3D;
  /** [B, L, D] output of the second-to-last layer, not normed (what Stable Diffusion / aMUSEd use). */
  penultimateHiddenState: tf.Tensor3D;
  /** [B, D] final-norm state at the first EOS position. */
  pooled: tf.Tensor2D;
  /** [B, projection_dim] = pooled · text_projectionᵀ (absent without a projection). */
  textEmbeds?: tf.Tensor2D;
}

export class ClipTextEncoder {
  readonly config: ClipTextConfig;
  readonly params = new ParamStore();

  /**
   * Builds the encoder with HF's CLIP initialisation from a seeded PRNG; `seed: null` leaves zeros
   * (weights about to be loaded).
   */
  constructor(config: Record<string, unknown> = {}, opts: { seed?: number | null } = {}) {
    this.config = clipTextConfig(config);
    const c = this.config;
    const rng = opts.seed === null ? undefined : new Prng(opts.seed ?? 0);
    const D = c.hidden_size;
    const add = (name: string, shape: number[], std: number) =>
      this.params.add(name, shape, rng ? rng.normalArray(shape[0] * (shape[1] ?? 1), std) : 'zeros');
    const ln = (name: string) => {
      this.params.add(`${name}.weight`, [D], 'ones');
      this.params.add(`${name}.bias`, [D], 'zeros');
    };
    const lin = (name: string, out: number, inp: number, std: number) => {
      add(`${name}.weight`, [out, inp], std);
      this.params.add(`${name}.bias`, [out], 'zeros');
    };
    const t = 'text_model';
    add(`${t}.embeddings.token_embedding.weight`, [c.vocab_size, D], 0.02);
    add(`${t}.embeddings.position_embedding.weight`, [c.max_position_embeddings, D], 0.02);
    const attnStd = D ** -0.5 * (2 * c.num_hidden_layers) ** -0.5;
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const l = `${t}.encoder.layers.${i}`;
      ln(`${l}.layer_norm1`);
      for (const w of ['q_proj', 'k_proj', 'v_proj']) lin(`${l}.self_attn.${w}`, D, D, attnStd);
      lin(`${l}.self_attn.out_proj`, D, D, D ** -0.5);
      ln(`${l}.layer_norm2`);
      lin(`${l}.mlp.fc1`, c.intermediate_size, D, (2 * D) ** -0.5);
      lin(`${l}.mlp.fc2`, D, c.intermediate_size, attnStd);
    }
    ln(`${t}.final_layer_norm`);
    if (c.projection_dim > 0) add('text_projection.weight', [c.projection_dim, D], D ** -0.5);
  }

  /**
   * Loads an HF CLIP text checkpoint (CLIPTextModel[WithProjection] or a full CLIPModel, whose vision tower
   * is skipped): directory (config.json + weights) or weights file. Without `text_projection.weight` in the
   * checkpoint, set `projection_dim: 0` in the config.
   */
  static async fromSafetensors(pathOrDir: string, opts: ModelFilesOptions = {}): Promise<ClipTextEncoder> {
    return loadModelFiles(
      pathOrDir,
      opts,
      (config, ckpt) => {
        const cfg = { ...clipTextConfig(config) } as unknown as Record<string, unknown>;
        if (!ckpt.has('text_projection.weight')) cfg.projection_dim = 0;
        return new ClipTextEncoder(cfg, { seed: null });
      },
      { ignore: (n) => !n.startsWith('text_model.') || n === 'text_model.embeddings.position_ids' },
    );
  }

  async save(dir: string): Promise<void> {
    const config = { architectures: ['CLIPTextModelWithProjection'], model_type: 'clip_text_model', ...this.config };
    await saveModelFiles(dir, config, this.params.record());
  }

  /** Runs the encoder on ids [B, L] (int32, L ≤ max_position_embeddings) with attention mask [B, L]. */
  forward(inputIds: tf.Tensor, attentionMask?: tf.Tensor): ClipTextOutput {
    const c = this.config;
    const p = (n: string) => this.params.get(n);
    const t = 'text_model';
    const act = activation(c.hidden_act);
    return tf.tidy(() => {
      const ids = tf.cast(inputIds, 'int32');
      const [b, length] = ids.shape as [number, number];
      const D = c.hidden_size;
      const pos = tf.slice(p(`${t}.embeddings.position_embedding.weight`), [0, 0], [length, D]);
      let x: tf.Tensor = tf.add(tf.gather(p(`${t}.embeddings.token_embedding.weight`), ids), pos);
      let bias: tf.Tensor = causalBias(length);
      if (attentionMask) bias = tf.add(bias, paddingBias(attentionMask));
      const scale = (D / c.num_attention_heads) ** -0.5;
      let penultimate: tf.Tensor = x;
      for (let i = 0; i < c.num_hidden_layers; i++) {
        if (i === c.num_hidden_layers - 1) penultimate = x;
        const l = `${t}.encoder.layers.${i}`;
        const lin = (h: tf.Tensor, n: string) => linear(h, p(`${l}.${n}.weight`), p(`${l}.${n}.bias`));
        const h = layerNorm(x, p(`${l}.layer_norm1.weight`), p(`${l}.layer_norm1.bias`), c.layer_norm_eps);
        const a = attention(
          lin(h, 'self_attn.q_proj'),
          lin(h, 'self_attn.k_proj'),
          lin(h, 'self_attn.v_proj'),
          c.num_attention_heads,
          { scale, bias },
        );
        x = tf.add(x, lin(a, 'self_attn.out_proj'));
        const g = layerNorm(x, p(`${l}.layer_norm2.weight`), p(`${l}.layer_norm2.bias`), c.layer_norm_eps);
        x = tf.add(x, lin(act(lin(g, 'mlp.fc1')), 'mlp.fc2'));
      }
      const last = layerNorm(x, p(`${t}.final_layer_norm.weight`), p(`${t}.final_layer_norm.bias`), c.layer_norm_eps);
      // Found on the device (no read back: webgpu has no synchronous read); same rule as eosPositions.
      const eosAt = eosPositionsTensor(ids, c.eos_token_id);
      const flat = tf.reshape(last, [b * length, D]);
      const pooled = tf.gather(
        flat,
        tf.add(tf.mul(tf.range(0, b, 1, 'int32'), tf.scalar(length, 'int32')), eosAt),
      ) as tf.Tensor2D;
      const out: ClipTextOutput = {
        lastHiddenState: last as tf.Tensor3D,
        penultimateHiddenState: penultimate as tf.Tensor3D,
        pooled,
      };
      if (c.projection_dim > 0) out.textEmbeds = linear(pooled, p('text_projection.weight')) as tf.Tensor2D;
      return out as unknown as tf.TensorContainer;
    }) as unknown as ClipTextOutput;
  }

  get dModel(): number {
    return this.config.hidden_size;
  }

  dispose(): void {
    this.params.dispose();
  }
}

/**
 * Pooling position per row: the first EOS id (HF, eos_token_id ≠ 2); with the legacy eos_token_id = 2
 * configs HF takes the position of the largest id instead. A row without EOS pools position 0 (HF's
 * argmax over an all-false row).
 */
export function eosPositions(ids: number[][], eosId: number): number[] {
  return ids.map((row) => {
    if (eosId === 2) return row.indexOf(Math.max(...row));
    const i = row.indexOf(eosId);
    return i < 0 ? 0 : i;
  });
}

/**
 * eosPositions on a tensor: ids [B, L] int32 -> positions [B] int32. The first matching position is taken
 * without relying on argMax's tie order: matches score L - position, the best score gives the first one.
 */
export function eosPositionsTensor(ids: tf.Tensor, eosId: number): tf.Tensor1D {
  return tf.tidy(() => {
    const length = tf.scalar(ids.shape[1]!, 'int32');
    const hit = eosId === 2 ? tf.equal(ids, tf.max(ids, 1, true)) : tf.equal(ids, tf.scalar(eosId, 'int32'));
    const score = tf.mul(tf.cast(hit, 'int32'), tf.sub(length, tf.range(0, ids.shape[1]!, 1, 'int32')));
    const best = tf.max(score, 1);
    return tf.where(tf.greater(best, tf.scalar(0, 'int32')), tf.sub(length, best), tf.zerosLike(best)) as tf.Tensor1D;
  });
}
