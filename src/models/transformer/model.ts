// open-muse's MaskGitTransformer (muse/modeling_transformer.py) on TensorFlow.js: token + position
// embeddings, pre-LN layers (self-attention, cross-attention to text states, GLU FFN, optional normformer
// norms), final norm and MLM head. Options beyond the fixtures: a prepended class token (ImageNet stage) and
// pooled-text AdaLN conditioning (aMUSEd style).
import * as tf from '@tensorflow/tfjs';
import { silu, geluErf } from '../layers/activations.ts';
import { attention, paddingBias } from '../layers/attention.ts';
import { linear } from '../layers/linear.ts';
import { layerNorm, rmsNorm } from '../layers/norms.ts';
import { lossAndParamGrads, type ParamStore } from '../layers/params.ts';
import { loadModelFiles, saveModelFiles, type ModelFilesOptions } from '../layers/model-files.ts';
import {
  checkTransformerClass,
  transformerConfig,
  transformerConfigJson,
  type MaskGitTransformerConfig,
} from './config.ts';
import { IGNORE_INDEX, maskedCrossEntropy } from './loss.ts';
import { buildTransformerParams } from './params.ts';

export interface ForwardOptions {
  /** Pooled text embedding [B, cond_embed_dim] (config add_cond_embeds). */
  condEmbeds?: tf.Tensor;
  /**
   * Class ids [B] (int32, 0-based): the token `codebook_size + id` is prepended, and the logits of that
   * position are dropped, so logits keep the shape of `inputIds`.
   */
  classIds?: tf.Tensor;
  /** Applies the configured dropouts. */
  training?: boolean;
  /**
   * Seeds the dropout masks (each dropout call takes the next seed from this one), so a training step is
   * reproducible and a resumed run repeats it exactly; tf's global RNG when absent.
   */
  dropoutSeed?: number;
  /** Receives intermediate activations by the fixture's debug names (keep them with tf.keep to use later). */
  capture?: (name: string, t: tf.Tensor) => void;
  /**
   * Self-conditioning (config self_conditioning): the previous prediction as probabilities over the codebook,
   * [B, T, codebook_size] for the T image tokens; absent = no previous prediction (zeros).
   */
  selfCond?: tf.Tensor;
}

export class MaskGitTransformer {
  readonly config: MaskGitTransformerConfig;
  readonly params: ParamStore;
  /** Seed of the next dropout call during a forward with `dropoutSeed` (undefined: unseeded). */
  private nextDropoutSeed: number | undefined;

  /** `seed` (default 0) draws the reference initialisation; `seed: null` leaves zeros (to load weights into). */
  constructor(
    config: Partial<MaskGitTransformerConfig> & Record<string, unknown>,
    opts: { seed?: number | null } = {},
  ) {
    this.config = transformerConfig(config);
    this.params = buildTransformerParams(this.config, opts.seed === undefined ? 0 : opts.seed);
  }

  /**
   * Loads a reference (or our) checkpoint: a directory with config.json + safetensors, or a weights file
   * (config.json next to it, or `opts.config`). Every tensor must match a parameter by name and shape.
   */
  static async fromSafetensors(pathOrDir: string, opts: ModelFilesOptions = {}): Promise<MaskGitTransformer> {
    const where = typeof opts.config === 'string' ? opts.config : `${pathOrDir} (its config.json)`;
    return loadModelFiles(pathOrDir, opts, (config) => {
      checkTransformerClass(config, typeof opts.config === 'object' ? `${pathOrDir} (the given config)` : where);
      return new MaskGitTransformer(config, { seed: null });
    });
  }

  /** Writes config.json + model.safetensors (reference names; open-muse loads the MaskGitTransformer class ones). */
  async save(dir: string): Promise<void> {
    await saveModelFiles(dir, transformerConfigJson(this.config), this.params.record());
  }

  /** Name (reference state_dict key) -> variable. */
  get variables(): Map<string, tf.Variable> {
    return this.params.vars;
  }

  private w(name: string): tf.Tensor {
    return this.params.get(name);
  }

  private dropout(x: tf.Tensor, rate: number): tf.Tensor {
    return tf.dropout(x, rate, undefined, this.dropoutSeed());
  }

  private dropoutSeed(): number | undefined {
    const seed = this.nextDropoutSeed;
    if (seed !== undefined) this.nextDropoutSeed = seed + 1;
    return seed;
  }

  private lin(x: tf.Tensor, name: string): tf.Tensor {
    return linear(x, this.w(`${name}.weight`), this.params.maybe(`${name}.bias`));
  }

  private layerNormP(x: tf.Tensor, name: string): tf.Tensor {
    return layerNorm(
      x,
      this.w(`${name}.weight`),
      this.params.maybe(`${name}.bias`) ?? null,
      this.config.layer_norm_eps,
    );
  }

  private norm(x: tf.Tensor, name: string): tf.Tensor {
    if (this.config.norm_type === 'layernorm') return this.layerNormP(x, name);
    return rmsNorm(x, this.w(`${name}.weight`), this.config.layer_norm_eps);
  }

  /** x·(1 + scale) + shift with [scale, shift] = mapper(silu(cond)), cond [B, D]. */
  private adaLN(x: tf.Tensor, cond: tf.Tensor | undefined, name: string): tf.Tensor {
    if (!cond) return x;
    const d = this.config.hidden_size;
    const ss = this.lin(silu(cond), `${name}.mapper`);
    const b = cond.shape[0];
    const scale = tf.reshape(tf.slice(ss, [0, 0], [b, d]), [b, 1, d]);
    const shift = tf.reshape(tf.slice(ss, [0, d], [b, d]), [b, 1, d]);
    return tf.add(tf.mul(x, tf.add(scale, 1)), shift);
  }

  private attn(x: tf.Tensor, ctx: tf.Tensor, name: string, bias: tf.Tensor | undefined, training: boolean): tf.Tensor {
    const heads = this.config.num_attention_heads;
    const hd = this.config.hidden_size / heads;
    const q = this.lin(x, `${name}.query`);
    const k = this.lin(ctx, `${name}.key`);
    const v = this.lin(ctx, `${name}.value`);
    // The reference scales by 1/sqrt(head_dim) computed in float32.
    const scale = Math.fround(1 / Math.fround(Math.sqrt(hd)));
    const drop = training ? this.config.attention_dropout : 0;
    const out = attention(q, k, v, heads, {
      scale,
      bias,
      dropout: drop,
      dropoutSeed: drop ? this.dropoutSeed() : undefined,
    });
    return this.lin(out, `${name}.out`);
  }

  private ffn(x: tf.Tensor, cond: tf.Tensor | undefined, l: string, training: boolean): tf.Tensor {
    let h = this.layerNormP(x, `${l}.ffn.pre_mlp_layer_norm`);
    h = this.adaLN(h, cond, `${l}.ffn.adaLN_modulation`);
    let y = geluErf(this.lin(h, `${l}.ffn.wi_0`));
    if (this.config.ffn_type === 'glu') y = tf.mul(y, this.lin(h, `${l}.ffn.wi_1`));
    if (this.config.use_normformer) y = this.norm(y, `${l}.ffn.mid_mlp_layer_norm`);
    if (training && this.config.hidden_dropout) y = this.dropout(y, this.config.hidden_dropout);
    return this.lin(y, `${l}.ffn.wo`);
  }

  private layer(
    x: tf.Tensor,
    i: number,
    ehs: tf.Tensor | undefined,
    bias: tf.Tensor | undefined,
    cond: tf.Tensor | undefined,
    training: boolean,
  ): tf.Tensor {
    const l = `transformer_layers.${i}`;
    const cfg = this.config;
    let h = this.adaLN(this.norm(x, `${l}.attn_layer_norm`), cond, `${l}.self_attn_adaLN_modulation`);
    h = this.attn(h, h, `${l}.attention`, undefined, training);
    if (cfg.use_normformer) h = this.norm(h, `${l}.post_attn_layer_norm`);
    x = tf.add(x, h);
    if (ehs) {
      h = this.adaLN(this.norm(x, `${l}.crossattn_layer_norm`), cond, `${l}.cross_attn_adaLN_modulation`);
      h = this.attn(h, ehs, `${l}.crossattention`, bias, training);
      if (cfg.use_normformer) h = this.norm(h, `${l}.post_crossattn_layer_norm`);
      x = tf.add(x, h);
    }
    return tf.add(x, this.ffn(x, cond, l, training));
  }

  /**
   * Logits [B, T, output_size] for image token ids [B, T] (int32). `encoderHiddenStates` [B, S, E] are the
   * text states (required with add_cross_attention); `encoderAttentionMask` [B, S] (1 = real token) masks
   * padded text positions (open-muse raises on this argument at the fixture commit; this is what it intends).
   */
  forward(
    inputIds: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: ForwardOptions = {},
  ): tf.Tensor3D {
    const cfg = this.config;
    if (cfg.add_cross_attention && !encoderHiddenStates) {
      throw new Error('MaskGitTransformer: add_cross_attention is set, so encoderHiddenStates must be given');
    }
    if (cfg.add_cond_embeds && !opts.condEmbeds)
      throw new Error('MaskGitTransformer: add_cond_embeds is set, so condEmbeds must be given');
    const capture = opts.capture ?? (() => {});
    const training = opts.training ?? false;
    this.nextDropoutSeed = opts.dropoutSeed;
    return tf.tidy(() => {
      let ids = tf.cast(inputIds, 'int32');
      if (opts.classIds) {
        const cls = tf.add(tf.reshape(tf.cast(opts.classIds, 'int32'), [-1, 1]), tf.scalar(cfg.codebook_size, 'int32'));
        ids = tf.concat([cls, ids], 1);
      }
      const [b, t] = ids.shape;
      if (t > cfg.max_position_embeddings)
        throw new Error(`sequence of ${t} tokens > max_position_embeddings ${cfg.max_position_embeddings}`);
      const pos = tf.slice(this.w('embed.position_embeddings.weight'), [0, 0], [t, cfg.hidden_size]);
      let x: tf.Tensor = tf.add(tf.gather(this.w('embed.word_embeddings.weight'), ids), pos);
      if (cfg.self_conditioning) x = tf.add(x, this.selfConditioning(opts.selfCond, b, t, !!opts.classIds));
      else if (opts.selfCond)
        throw new Error('MaskGitTransformer: selfCond given but the model was built without self_conditioning');
      if (training && cfg.hidden_dropout) x = this.dropout(x, cfg.hidden_dropout);
      capture('embed', x);

      // Text states are used only by models with cross-attention (as in the reference's layers).
      let ehs = cfg.add_cross_attention ? encoderHiddenStates : undefined;
      if (ehs && cfg.project_encoder_hidden_states) {
        ehs = this.norm(this.lin(ehs, 'encoder_proj'), 'encoder_proj_layer_norm');
        capture('encoder_proj_layer_norm', ehs);
      }
      const bias = ehs && encoderAttentionMask ? paddingBias(encoderAttentionMask) : undefined;
      let cond: tf.Tensor | undefined;
      if (cfg.add_cond_embeds) cond = this.lin(silu(this.lin(opts.condEmbeds!, 'cond_embed.0')), 'cond_embed.2');

      for (let i = 0; i < cfg.num_hidden_layers; i++) {
        x = this.layer(x, i, ehs, bias, cond, training);
        capture(`transformer_layers.${i}`, x);
      }
      if (cfg.use_encoder_layernorm) {
        x = this.norm(x, 'encoder_layer_norm');
        capture('encoder_layer_norm', x);
      }
      let logits: tf.Tensor;
      if (cfg.use_mlm_layer) {
        let h = geluErf(this.lin(x, 'mlm_layer.mlm_dense'));
        if (cfg.use_mlm_layernorm) h = this.norm(h, 'mlm_layer.mlm_ln');
        logits = this.lin(h, 'mlm_layer.to_logits');
      } else {
        logits = this.lin(x, 'to_logits');
      }
      if (opts.classIds) logits = tf.slice(logits, [0, 1, 0], [b, t - 1, logits.shape[2]!]);
      return logits as tf.Tensor3D;
    });
  }

  /**
   * Soft-token embedding of the previous prediction, projected: self_cond_proj(p · E[:codebook]), [B, t, D]
   * (a zero row for a prepended class token; no prediction = zeros in).
   */
  private selfConditioning(probs: tf.Tensor | undefined, b: number, t: number, classToken: boolean): tf.Tensor {
    const cfg = this.config;
    const n = classToken ? t - 1 : t;
    // No prediction: zeros through the projection (so its weight still gets a (zero) gradient).
    if (!probs) return this.lin(tf.zeros([1, cfg.hidden_size]), 'self_cond_proj');
    if (probs.rank !== 3 || probs.shape[0] !== b || probs.shape[1] !== n || probs.shape[2] !== cfg.codebook_size) {
      throw new Error(
        `MaskGitTransformer: selfCond has shape [${probs.shape}], expected [${b}, ${n}, ${cfg.codebook_size}]`,
      );
    }
    const codes = tf.slice(this.w('embed.word_embeddings.weight'), [0, 0], [cfg.codebook_size, cfg.hidden_size]);
    let soft = tf.reshape(tf.matMul(tf.reshape(probs, [b * n, cfg.codebook_size]), codes), [b, n, cfg.hidden_size]);
    if (classToken) soft = tf.concat([tf.zeros([b, 1, cfg.hidden_size]), soft], 1);
    return this.lin(soft, 'self_cond_proj');
  }

  /** Logits and the masked cross-entropy against `labels` [B, T] (IGNORE_INDEX = -100 where not masked). */
  forwardWithLoss(
    inputIds: tf.Tensor,
    labels: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: ForwardOptions & { labelSmoothing?: number } = {},
  ): { logits: tf.Tensor3D; loss: tf.Scalar } {
    const logits = this.forward(inputIds, encoderHiddenStates, encoderAttentionMask, opts);
    const loss = maskedCrossEntropy(logits, labels, opts.labelSmoothing ?? 0);
    return { logits, loss };
  }

  /** Gradient of the loss w.r.t. every parameter, keyed by reference name (the caller disposes them). */
  lossAndGrads(
    inputIds: tf.Tensor,
    labels: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: ForwardOptions & { labelSmoothing?: number } = {},
  ): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
    return lossAndParamGrads(this.params, () => {
      const { logits, loss } = this.forwardWithLoss(inputIds, labels, encoderHiddenStates, encoderAttentionMask, opts);
      logits.dispose();
      return loss;
    });
  }

  /** Ids with a class token prepended, as open-muse's generate does ([B, T] -> [B, T + 1]). */
  prependClassToken(inputIds: tf.Tensor, classIds: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => {
      const cls = tf.add(
        tf.reshape(tf.cast(classIds, 'int32'), [-1, 1]),
        tf.scalar(this.config.codebook_size, 'int32'),
      );
      return tf.concat([cls, tf.cast(inputIds, 'int32')], 1) as tf.Tensor2D;
    });
  }

  parameterCount(): number {
    return this.params.count();
  }

  dispose(): void {
    this.params.dispose();
  }
}

export { IGNORE_INDEX };
