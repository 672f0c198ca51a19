// The super-resolution transformer (MUSE §2.3) on TensorFlow.js: high-res token + position embeddings,
// pre-norm layers of self-attention (full or multi-axis), cross-attention to [low-res context ; text states]
// and a GLU FFN; the low-res context is the embedded low-res tokens after num_lowres_layers self-attention
// layers. Trained by masking the high-res tokens only.
import * as tf from '@tensorflow/tfjs';
import { geluErf } from '../layers/activations.ts';
import { attention, paddingBias } from '../layers/attention.ts';
import { multiAxisAttention } from '../layers/multi-axis-attention.ts';
import { linear } from '../layers/linear.ts';
import { layerNorm, rmsNorm } from '../layers/norms.ts';
import { lossAndParamGrads, type ParamStore } from '../layers/params.ts';
import { loadModelFiles, saveModelFiles, type ModelFilesOptions } from '../layers/model-files.ts';
import { maskedCrossEntropy } from '../transformer/loss.ts';
import type { ForwardOptions } from '../transformer/model.ts';
import { superResConfig, superResConfigJson, type SuperResConfig } from './config.ts';
import { buildSuperResParams } from './params.ts';

export interface SuperResForwardOptions extends ForwardOptions {
  /** [B, num_lowres_tokens] int32 ids of the base (low-res) VQ: required. */
  lowresIds?: tf.Tensor;
}

export class SuperResTransformer {
  readonly config: SuperResConfig;
  readonly params: ParamStore;
  private nextDropoutSeed: number | undefined;

  constructor(config: Record<string, unknown>, opts: { seed?: number | null } = {}) {
    this.config = superResConfig(config);
    this.params = buildSuperResParams(this.config, opts.seed === undefined ? 0 : opts.seed);
  }

  static async fromSafetensors(pathOrDir: string, opts: ModelFilesOptions = {}): Promise<SuperResTransformer> {
    return loadModelFiles(pathOrDir, opts, (config) => new SuperResTransformer(config, { seed: null }));
  }

  async save(dir: string): Promise<void> {
    await saveModelFiles(dir, superResConfigJson(this.config), this.params.record());
  }

  get variables(): Map<string, tf.Variable> {
    return this.params.vars;
  }

  parameterCount(): number {
    return this.params.count();
  }

  dispose(): void {
    this.params.dispose();
  }

  private seed(): number | undefined {
    const s = this.nextDropoutSeed;
    if (s !== undefined) this.nextDropoutSeed = s + 2; // multi-axis attention uses two
    return s;
  }

  private lin(x: tf.Tensor, name: string): tf.Tensor {
    return linear(x, this.params.get(`${name}.weight`), this.params.maybe(`${name}.bias`));
  }

  private norm(x: tf.Tensor, name: string): tf.Tensor {
    const w = this.params.get(`${name}.weight`);
    if (this.config.norm_type === 'layernorm')
      return layerNorm(x, w, this.params.maybe(`${name}.bias`) ?? null, this.config.layer_norm_eps);
    return rmsNorm(x, w, this.config.layer_norm_eps);
  }

  private attn(
    x: tf.Tensor,
    ctx: tf.Tensor,
    name: string,
    bias: tf.Tensor | undefined,
    training: boolean,
    multiAxis: boolean,
  ): tf.Tensor {
    const cfg = this.config;
    const heads = cfg.num_attention_heads;
    const q = this.lin(x, `${name}.query`);
    const k = this.lin(ctx, `${name}.key`);
    const v = this.lin(ctx, `${name}.value`);
    const scale = Math.fround(1 / Math.fround(Math.sqrt(cfg.hidden_size / heads)));
    const dropout = training ? cfg.attention_dropout : 0;
    const dropoutSeed = dropout ? this.seed() : undefined;
    let out: tf.Tensor;
    if (multiAxis) {
      const side = Math.round(Math.sqrt(x.shape[1] as number));
      out = multiAxisAttention(q, k, v, heads, {
        height: side,
        width: side,
        block: cfg.block_size,
        grid: cfg.grid_size,
        scale,
        dropout,
        dropoutSeed,
      });
    } else {
      out = attention(q, k, v, heads, { scale, bias, dropout, dropoutSeed });
    }
    return this.lin(out, `${name}.out`);
  }

  private layer(
    x: tf.Tensor,
    l: string,
    ctx: tf.Tensor | undefined,
    bias: tf.Tensor | undefined,
    training: boolean,
    multiAxis: boolean,
  ): tf.Tensor {
    let h = this.norm(x, `${l}.attn_layer_norm`);
    x = tf.add(x, this.attn(h, h, `${l}.attention`, undefined, training, multiAxis));
    if (ctx) {
      h = this.norm(x, `${l}.crossattn_layer_norm`);
      x = tf.add(x, this.attn(h, ctx, `${l}.crossattention`, bias, training, false));
    }
    h = this.norm(x, `${l}.ffn.pre_mlp_layer_norm`);
    let y = tf.mul(geluErf(this.lin(h, `${l}.ffn.wi_0`)), this.lin(h, `${l}.ffn.wi_1`));
    if (training && this.config.hidden_dropout) y = tf.dropout(y, this.config.hidden_dropout, undefined, this.seed());
    return tf.add(x, this.lin(y, `${l}.ffn.wo`));
  }

  private embed(ids: tf.Tensor, prefix: string): tf.Tensor {
    const [, t] = ids.shape as [number, number];
    const pos = this.params.get(`${prefix}.position_embeddings.weight`);
    return tf.add(
      tf.gather(this.params.get(`${prefix}.word_embeddings.weight`), tf.cast(ids, 'int32')),
      tf.slice(pos, [0, 0], [t, this.config.hidden_size]),
    );
  }

  /**
   * Logits [B, num_vq_tokens, codebook_size] for high-res ids [B, num_vq_tokens], given the low-res ids
   * (`opts.lowresIds`) and text states [B, S, encoder_hidden_size] with their padding mask [B, S].
   */
  forward(
    inputIds: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: SuperResForwardOptions = {},
  ): tf.Tensor3D {
    const cfg = this.config;
    const lowres = opts.lowresIds;
    if (!lowres)
      throw new Error(
        "super-res transformer: lowresIds (the base model's low-res tokens [B, num_lowres_tokens]) must be given",
      );
    if (!encoderHiddenStates)
      throw new Error('super-res transformer: encoderHiddenStates (text states [B, S, D]) must be given');
    const [b, t] = inputIds.shape as [number, number];
    if (t !== cfg.num_vq_tokens)
      throw new Error(`super-res transformer: ${t} high-res tokens given, num_vq_tokens is ${cfg.num_vq_tokens}`);
    if (lowres.shape[0] !== b || lowres.shape[1] !== cfg.num_lowres_tokens) {
      throw new Error(
        `super-res transformer: lowresIds has shape [${lowres.shape}], expected [${b}, ${cfg.num_lowres_tokens}]`,
      );
    }
    if (encoderHiddenStates.shape[2] !== cfg.encoder_hidden_size) {
      throw new Error(
        `super-res transformer: text states have width ${encoderHiddenStates.shape[2]}, encoder_hidden_size is ${cfg.encoder_hidden_size}`,
      );
    }
    const training = opts.training ?? false;
    const capture = opts.capture ?? (() => {});
    this.nextDropoutSeed = opts.dropoutSeed;
    return tf.tidy(() => {
      let lr = this.embed(lowres, 'lowres_embed');
      for (let i = 0; i < cfg.num_lowres_layers; i++)
        lr = this.layer(lr, `lowres_layers.${i}`, undefined, undefined, training, false);
      lr = this.norm(lr, 'lowres_layer_norm');
      const text = this.norm(this.lin(encoderHiddenStates, 'encoder_proj'), 'encoder_proj_layer_norm');
      const ctx = tf.concat([lr, text], 1);
      capture('context', ctx);
      let bias: tf.Tensor | undefined;
      if (encoderAttentionMask)
        bias = paddingBias(
          tf.concat([tf.ones([b, cfg.num_lowres_tokens], 'int32'), tf.cast(encoderAttentionMask, 'int32')], 1),
        );
      let x = this.embed(inputIds, 'embed');
      if (training && cfg.hidden_dropout) x = tf.dropout(x, cfg.hidden_dropout, undefined, this.seed());
      const multiAxis = cfg.attention === 'multi_axis';
      for (let i = 0; i < cfg.num_hidden_layers; i++)
        x = this.layer(x, `transformer_layers.${i}`, ctx, bias, training, multiAxis);
      x = this.norm(x, 'encoder_layer_norm');
      x = this.norm(geluErf(this.lin(x, 'mlm_layer.mlm_dense')), 'mlm_layer.mlm_ln');
      return this.lin(x, 'mlm_layer.to_logits') as tf.Tensor3D;
    });
  }

  forwardWithLoss(
    inputIds: tf.Tensor,
    labels: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: SuperResForwardOptions & { labelSmoothing?: number } = {},
  ): { logits: tf.Tensor3D; loss: tf.Scalar } {
    const logits = this.forward(inputIds, encoderHiddenStates, encoderAttentionMask, opts);
    return { logits, loss: maskedCrossEntropy(logits, labels, opts.labelSmoothing ?? 0) };
  }

  lossAndGrads(
    inputIds: tf.Tensor,
    labels: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: SuperResForwardOptions & { labelSmoothing?: number } = {},
  ): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
    return lossAndParamGrads(this.params, () => {
      const { logits, loss } = this.forwardWithLoss(inputIds, labels, encoderHiddenStates, encoderAttentionMask, opts);
      logits.dispose();
      return loss;
    });
  }
}
