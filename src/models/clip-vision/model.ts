// CLIP vision tower with projection (Hugging Face `CLIPVisionModelWithProjection`, the image half of
// `CLIPModel`): patch embedding (conv without bias) + class token + learned positions, pre-LN ("pre_layrnorm",
// HF's spelling), pre-LN encoder layers with quick-GELU MLPs and no attention mask, post layer norm of the class
// token, bias-free visual projection. Inference only; inputs are CLIPImageProcessor's pixel_values as NHWC.
import * as tf from '@tensorflow/tfjs';
import { activation } from '../layers/activations.ts';
import { attention } from '../layers/attention.ts';
import { linear } from '../layers/linear.ts';
import { loadModelFiles, type ModelFilesOptions } from '../layers/model-files.ts';
import { layerNorm } from '../layers/norms.ts';
import { ParamStore } from '../layers/params.ts';
import { Prng } from '../layers/prng.ts';

export interface ClipVisionConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_channels: number;
  image_size: number;
  patch_size: number;
  hidden_act: string;
  layer_norm_eps: number;
  projection_dim: number;
}

/** HF CLIPVisionConfig defaults (ViT-B/32). */
export const CLIP_VISION_DEFAULTS: ClipVisionConfig = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_channels: 3,
  image_size: 224,
  patch_size: 32,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  projection_dim: 512,
};

/** Accepts a CLIPVisionConfig or a full CLIPConfig (its `vision_config`, projection_dim from the top level). */
export function clipVisionConfig(raw: Record<string, unknown> = {}): ClipVisionConfig {
  const v = (raw.vision_config as Record<string, unknown> | undefined) ?? raw;
  const merged: Record<string, unknown> = { ...CLIP_VISION_DEFAULTS };
  for (const k of Object.keys(CLIP_VISION_DEFAULTS)) if (v[k] !== undefined && v[k] !== null) merged[k] = v[k];
  if (raw.vision_config && raw.projection_dim !== undefined) merged.projection_dim = raw.projection_dim;
  return merged as unknown as ClipVisionConfig;
}

export class ClipVisionEncoder {
  readonly config: ClipVisionConfig;
  readonly params = new ParamStore();

  /** Random small-std weights from a seeded PRNG (tests, benchmarks); `seed: null` leaves zeros to be loaded. */
  constructor(config: Record<string, unknown> = {}, opts: { seed?: number | null } = {}) {
    this.config = clipVisionConfig(config);
    const c = this.config;
    const rng = opts.seed === null ? undefined : new Prng(opts.seed ?? 0);
    const D = c.hidden_size;
    const add = (name: string, shape: number[], std: number) =>
      this.params.add(
        name,
        shape,
        rng
          ? rng.normalArray(
              shape.reduce((a, b) => a * b, 1),
              std,
            )
          : 'zeros',
      );
    const ln = (name: string) => {
      this.params.add(`${name}.weight`, [D], 'ones');
      this.params.add(`${name}.bias`, [D], 'zeros');
    };
    const lin = (name: string, out: number, inp: number, std: number) => {
      add(`${name}.weight`, [out, inp], std);
      this.params.add(`${name}.bias`, [out], 'zeros');
    };
    const v = 'vision_model';
    const grid = c.image_size / c.patch_size;
    if (!Number.isInteger(grid))
      throw new Error(`CLIP vision config: image_size ${c.image_size} is not a multiple of patch_size ${c.patch_size}`);
    add(`${v}.embeddings.class_embedding`, [D], D ** -0.5);
    add(`${v}.embeddings.patch_embedding.weight`, [D, c.num_channels, c.patch_size, c.patch_size], 0.02);
    add(`${v}.embeddings.position_embedding.weight`, [grid * grid + 1, D], 0.02);
    ln(`${v}.pre_layrnorm`);
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const l = `${v}.encoder.layers.${i}`;
      ln(`${l}.layer_norm1`);
      for (const w of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) lin(`${l}.self_attn.${w}`, D, D, D ** -0.5);
      ln(`${l}.layer_norm2`);
      lin(`${l}.mlp.fc1`, c.intermediate_size, D, D ** -0.5);
      lin(`${l}.mlp.fc2`, D, c.intermediate_size, c.intermediate_size ** -0.5);
    }
    ln(`${v}.post_layernorm`);
    add('visual_projection.weight', [c.projection_dim, D], D ** -0.5);
  }

  /**
   * Loads the vision half of an HF CLIP checkpoint (CLIPModel or CLIPVisionModelWithProjection): a directory
   * (config.json + safetensors) or a weights file. The text tower and logit_scale are skipped.
   */
  static async fromSafetensors(pathOrDir: string, opts: ModelFilesOptions = {}): Promise<ClipVisionEncoder> {
    return loadModelFiles(pathOrDir, opts, (config) => new ClipVisionEncoder(config, { seed: null }), {
      ignore: (n) => !n.startsWith('vision_model.') || n === 'vision_model.embeddings.position_ids',
    });
  }

  get gridSize(): number {
    return this.config.image_size / this.config.patch_size;
  }

  /** Image embeddings [B, projection_dim] (not normalised, as get_image_features) of pixel_values [B, S, S, 3]. */
  imageEmbeds(pixels: tf.Tensor4D): tf.Tensor2D {
    const c = this.config;
    const S = c.image_size;
    if (pixels.rank !== 4 || pixels.shape[1] !== S || pixels.shape[2] !== S || pixels.shape[3] !== c.num_channels) {
      throw new Error(`CLIP vision input must be [B, ${S}, ${S}, ${c.num_channels}], got [${pixels.shape}]`);
    }
    const p = (n: string) => this.params.get(n);
    const v = 'vision_model';
    const act = activation(c.hidden_act);
    const D = c.hidden_size;
    return tf.tidy(() => {
      const b = pixels.shape[0];
      const g = this.gridSize;
      const kernel = tf.transpose(p(`${v}.embeddings.patch_embedding.weight`), [2, 3, 1, 0]) as tf.Tensor4D;
      const patches = tf.reshape(tf.conv2d(pixels, kernel, c.patch_size, 'valid'), [b, g * g, D]);
      const cls = tf.tile(tf.reshape(p(`${v}.embeddings.class_embedding`), [1, 1, D]), [b, 1, 1]);
      let x: tf.Tensor = tf.add(tf.concat([cls, patches], 1), p(`${v}.embeddings.position_embedding.weight`));
      x = layerNorm(x, p(`${v}.pre_layrnorm.weight`), p(`${v}.pre_layrnorm.bias`), c.layer_norm_eps);
      const scale = (D / c.num_attention_heads) ** -0.5;
      for (let i = 0; i < c.num_hidden_layers; i++) {
        const l = `${v}.encoder.layers.${i}`;
        const lin = (h: tf.Tensor, n: string) => linear(h, p(`${l}.${n}.weight`), p(`${l}.${n}.bias`));
        const h = layerNorm(x, p(`${l}.layer_norm1.weight`), p(`${l}.layer_norm1.bias`), c.layer_norm_eps);
        x = tf.add(
          x,
          lin(
            attention(
              lin(h, 'self_attn.q_proj'),
              lin(h, 'self_attn.k_proj'),
              lin(h, 'self_attn.v_proj'),
              c.num_attention_heads,
              { scale },
            ),
            'self_attn.out_proj',
          ),
        );
        const m = layerNorm(x, p(`${l}.layer_norm2.weight`), p(`${l}.layer_norm2.bias`), c.layer_norm_eps);
        x = tf.add(x, lin(act(lin(m, 'mlp.fc1')), 'mlp.fc2'));
      }
      const pooled = layerNorm(
        tf.reshape(tf.slice(x, [0, 0, 0], [b, 1, D]), [b, D]),
        p(`${v}.post_layernorm.weight`),
        p(`${v}.post_layernorm.bias`),
        c.layer_norm_eps,
      );
      return linear(pooled, p('visual_projection.weight')) as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}
