// open-muse's MaskGiTUViT (muse/modeling_transformer_v2.py; the aMUSEd architecture) on TensorFlow.js:
// token embedding + 1x1 conv, a down block of (ResBlock, AttentionBlock2D) pairs on the token grid (3x3
// depthwise convs carry position: there are no position embeddings), a pre-norm transformer with AdaLN from
// the pooled text + micro-conditions, an up block, and a 1x1-conv MLM head over the codebook.
// Conv activations are NHWC ([B, H, W, C]); a grid is flattened row-major, as the reference's permute+reshape.
import * as tf from '@tensorflow/tfjs';
import { geluErf, silu } from '../layers/activations.ts';
import { attention, paddingBias } from '../layers/attention.ts';
import { linear } from '../layers/linear.ts';
import { layerNorm, rmsNorm } from '../layers/norms.ts';
import { lossAndParamGrads, type ParamStore } from '../layers/params.ts';
import { openModelFiles, saveModelFiles, type ModelFilesOptions } from '../layers/model-files.ts';
import { maskedCrossEntropy } from '../transformer/loss.ts';
import type { ForwardOptions } from '../transformer/model.ts';
import { numMicroConds, uvitConfig, uvitConfigJson, type MaskGiTUViTConfig } from './config.ts';
import { buildUViTParams } from './params.ts';
import { configFromDiffusers, diffusersSource, isDiffusersUViT } from './diffusers-names.ts';
import { depthwiseConv3x3, globalResponseNorm, sinusoidalEncode } from './ops.ts';

export interface UViTForwardOptions extends ForwardOptions {
  /** [B, n] micro-conditions (n = micro_cond_embed_dim / micro_cond_encode_dim); default_micro_conds when absent. */
  microConds?: tf.Tensor;
}

export class MaskGiTUViT {
  readonly config: MaskGiTUViTConfig;
  readonly params: ParamStore;
  private nextDropoutSeed: number | undefined;

  /** `seed` (default 0) draws the reference initialisation; `seed: null` leaves zeros (to load weights into). */
  constructor(config: Record<string, unknown>, opts: { seed?: number | null } = {}) {
    this.config = uvitConfig(config);
    this.params = buildUViTParams(this.config, opts.seed === undefined ? 0 : opts.seed);
  }

  /**
   * Loads weights by name: open-muse's MaskGiTUViT (our save() format) or diffusers' UVit2DModel (the
   * published aMUSEd checkpoints; recognised by the config's _class_name), config.json + safetensors.
   * `overrides` replace config keys (e.g. default_micro_conds).
   */
  static async fromSafetensors(
    pathOrDir: string,
    opts: ModelFilesOptions & { overrides?: Record<string, unknown> } = {},
  ): Promise<MaskGiTUViT> {
    const { config, ckpt } = await openModelFiles(pathOrDir, opts);
    try {
      const diffusers = isDiffusersUViT(config);
      const model = new MaskGiTUViT(
        { ...(diffusers ? configFromDiffusers(config) : config), ...opts.overrides },
        { seed: null },
      );
      try {
        await model.params.load(diffusers ? diffusersSource(ckpt) : ckpt);
      } catch (err) {
        model.dispose();
        throw err;
      }
      return model;
    } finally {
      await ckpt.close();
    }
  }

  async save(dir: string): Promise<void> {
    await saveModelFiles(dir, uvitConfigJson(this.config), this.params.record());
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

  private w(name: string): tf.Tensor {
    return this.params.get(name);
  }

  private dropout(x: tf.Tensor, rate: number, training: boolean): tf.Tensor {
    if (!training || !rate) return x;
    const seed = this.nextDropoutSeed;
    if (seed !== undefined) this.nextDropoutSeed = seed + 1;
    return tf.dropout(x, rate, undefined, seed);
  }

  private lin(x: tf.Tensor, name: string): tf.Tensor {
    return linear(x, this.w(`${name}.weight`), this.params.maybe(`${name}.bias`));
  }

  /** A 1x1 conv (weight [out, in, 1, 1]) on NHWC = a linear over channels. */
  private conv1x1(x: tf.Tensor, name: string): tf.Tensor {
    const w = this.w(`${name}.weight`);
    return linear(x, tf.reshape(w, [w.shape[0], w.shape[1] as number]), this.params.maybe(`${name}.bias`));
  }

  private layerNormP(x: tf.Tensor, name: string): tf.Tensor {
    return layerNorm(
      x,
      this.params.maybe(`${name}.weight`) ?? null,
      this.params.maybe(`${name}.bias`) ?? null,
      this.config.layer_norm_eps,
    );
  }

  /** The configured Norm over the last axis (Norm2D on NHWC is the same thing). */
  private norm(x: tf.Tensor, name: string): tf.Tensor {
    if (this.config.norm_type === 'layernorm') return this.layerNormP(x, name);
    return rmsNorm(x, this.params.maybe(`${name}.weight`) ?? null, this.config.layer_norm_eps);
  }

  /** x·(1 + scale) + shift, [scale, shift] = mapper(silu(cond)); cond [B, hidden], x [B, T, C] or [B, H, W, C]. */
  private adaLN(x: tf.Tensor, cond: tf.Tensor, name: string): tf.Tensor {
    const c = x.shape[x.rank - 1];
    const b = cond.shape[0];
    const ss = this.lin(silu(cond), `${name}.mapper`);
    const shape = [b, ...Array(x.rank - 2).fill(1), c];
    const scale = tf.reshape(tf.slice(ss, [0, 0], [b, c]), shape);
    const shift = tf.reshape(tf.slice(ss, [0, c], [b, c]), shape);
    return tf.add(tf.mul(x, tf.add(scale, 1)), shift);
  }

  private attn(
    x: tf.Tensor,
    ctx: tf.Tensor,
    name: string,
    heads: number,
    bias: tf.Tensor | undefined,
    training: boolean,
  ): tf.Tensor {
    const hd = x.shape[x.rank - 1] / heads;
    const q = this.lin(x, `${name}.query`);
    const k = this.lin(ctx, `${name}.key`);
    const v = this.lin(ctx, `${name}.value`);
    const scale = Math.fround(1 / Math.fround(Math.sqrt(hd)));
    const drop = training ? this.config.attention_dropout : 0;
    let seed: number | undefined;
    if (drop && this.nextDropoutSeed !== undefined) seed = this.nextDropoutSeed++;
    const out = attention(q, k, v, heads, { scale, bias, dropout: drop, dropoutSeed: seed });
    return this.lin(out, `${name}.out`);
  }

  private resBlock(x: tf.Tensor4D, cond: tf.Tensor, name: string, training: boolean): tf.Tensor4D {
    let h: tf.Tensor = depthwiseConv3x3(
      x,
      this.w(`${name}.depthwise.weight`),
      this.params.maybe(`${name}.depthwise.bias`),
    );
    h = this.norm(h, `${name}.norm.norm`);
    h = geluErf(this.lin(h, `${name}.channelwise.0`));
    h = globalResponseNorm(
      h as tf.Tensor4D,
      this.w(`${name}.channelwise.2.gamma`),
      this.w(`${name}.channelwise.2.beta`),
    );
    h = this.dropout(h, this.config.hidden_dropout, training);
    h = this.lin(h, `${name}.channelwise.4`);
    return this.adaLN(tf.add(h, x), cond, `${name}.adaLN_modulation`) as tf.Tensor4D;
  }

  /** Two cross-attentions of the grid to the (projected) text states (the reference's AttentionBlock2D). */
  private attentionBlock(
    x: tf.Tensor4D,
    ehs: tf.Tensor,
    bias: tf.Tensor | undefined,
    name: string,
    training: boolean,
  ): tf.Tensor4D {
    const [b, hh, ww, c] = x.shape;
    const heads = this.config.block_num_heads;
    const ctx = this.params.maybe(`${name}.kv_mapper.weight`) ? this.lin(silu(ehs), `${name}.kv_mapper`) : ehs;
    let residual: tf.Tensor = tf.reshape(x, [b, hh * ww, c]);
    let h = this.attn(this.norm(residual, `${name}.attn_layer_norm`), ctx, `${name}.attention`, heads, bias, training);
    residual = tf.add(h, residual);
    h = this.attn(
      this.norm(residual, `${name}.crossattn_layer_norm`),
      ctx,
      `${name}.crossattention`,
      heads,
      bias,
      training,
    );
    return tf.reshape(tf.add(h, residual), [b, hh, ww, c]);
  }

  private blocks(
    x: tf.Tensor4D,
    cond: tf.Tensor,
    ehs: tf.Tensor,
    bias: tf.Tensor | undefined,
    name: string,
    training: boolean,
  ): tf.Tensor4D {
    for (let i = 0; i < this.config.num_res_blocks; i++) {
      x = this.resBlock(x, cond, `${name}.res_blocks.${i}`, training);
      x = this.attentionBlock(x, ehs, bias, `${name}.attention_blocks.${i}`, training);
    }
    return x;
  }

  /**
   * One transformer layer in the reference's residual form: each norm first adds the pending branch output
   * to the residual stream, and the layer returns (branch output, stream) for the next one to add.
   */
  private layer(
    h: tf.Tensor,
    residual: tf.Tensor | undefined,
    ehs: tf.Tensor,
    cond: tf.Tensor,
    bias: tf.Tensor | undefined,
    i: number,
    training: boolean,
  ): [tf.Tensor, tf.Tensor] {
    const l = `transformer_layers.${i}`;
    const heads = this.config.num_attention_heads;
    let stream = residual ? tf.add(h, residual) : h;
    h = this.adaLN(this.norm(stream, `${l}.attn_layer_norm`), cond, `${l}.self_attn_adaLN_modulation`);
    h = this.attn(h, h, `${l}.attention`, heads, undefined, training);
    stream = tf.add(h, stream);
    h = this.adaLN(this.norm(stream, `${l}.crossattn_layer_norm`), cond, `${l}.cross_attn_adaLN_modulation`);
    h = this.attn(h, ehs, `${l}.crossattention`, heads, bias, training);
    stream = tf.add(h, stream);
    h = this.adaLN(this.layerNormP(stream, `${l}.ffn.pre_mlp_layer_norm`), cond, `${l}.ffn.adaLN_modulation`);
    h = tf.mul(geluErf(this.lin(h, `${l}.ffn.wi_0`)), this.lin(h, `${l}.ffn.wi_1`));
    h = this.dropout(h, this.config.hidden_dropout, training);
    return [this.lin(h, `${l}.ffn.wo`), stream];
  }

  /** [B, n] micro-conditions: the given ones, or default_micro_conds for every row. */
  private microConds(b: number, given: tf.Tensor | undefined): tf.Tensor {
    const n = numMicroConds(this.config);
    if (given) {
      if (given.rank !== 2 || given.shape[0] !== b || given.shape[1] !== n) {
        throw new Error(`MaskGiTUViT: microConds has shape [${given.shape}], expected [${b}, ${n}]`);
      }
      return tf.cast(given, 'float32');
    }
    return tf.tile(tf.tensor2d(this.config.default_micro_conds, [1, n], 'float32'), [b, 1]);
  }

  /**
   * Logits [B, T, codebook_size] for image token ids [B, T]. Text states [B, S, encoder_hidden_size] and the
   * pooled vector `opts.condEmbeds` [B, cond_embed_dim] are required. `encoderAttentionMask` [B, S] masks padded
   * text positions (the reference attends to every position it is given).
   */
  forward(
    inputIds: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: UViTForwardOptions = {},
  ): tf.Tensor3D {
    const cfg = this.config;
    if (!encoderHiddenStates) throw new Error('MaskGiTUViT: encoderHiddenStates (text states [B, S, D]) must be given');
    if (!opts.condEmbeds)
      throw new Error('MaskGiTUViT: condEmbeds (the pooled text vector [B, cond_embed_dim]) must be given');
    if (opts.classIds) throw new Error('MaskGiTUViT: class conditioning is not part of this architecture');
    const [b, t] = inputIds.shape as [number, number];
    if (t !== cfg.num_vq_tokens)
      throw new Error(
        `MaskGiTUViT: ${t} tokens per image given, the model is configured for num_vq_tokens ${cfg.num_vq_tokens}`,
      );
    if (encoderHiddenStates.shape[2] !== cfg.encoder_hidden_size) {
      throw new Error(
        `MaskGiTUViT: text states have width ${encoderHiddenStates.shape[2]}, encoder_hidden_size is ${cfg.encoder_hidden_size}`,
      );
    }
    if (opts.condEmbeds.shape[1] !== cfg.cond_embed_dim)
      throw new Error(
        `MaskGiTUViT: condEmbeds has width ${opts.condEmbeds.shape[1]}, cond_embed_dim is ${cfg.cond_embed_dim}`,
      );
    const capture = opts.capture ?? (() => {});
    const training = opts.training ?? false;
    this.nextDropoutSeed = opts.dropoutSeed;
    return tf.tidy(() => {
      const ehs = this.norm(this.lin(encoderHiddenStates, 'encoder_proj'), 'encoder_proj_layer_norm');
      const bias = encoderAttentionMask ? paddingBias(encoderAttentionMask) : undefined;
      const micro = sinusoidalEncode(tf.reshape(this.microConds(b, opts.microConds), [-1]), cfg.micro_cond_encode_dim);
      const condIn = tf.concat([tf.cast(opts.condEmbeds!, 'float32'), tf.reshape(micro, [b, -1])], 1);
      const cond = this.lin(silu(this.lin(condIn, 'cond_embed.0')), 'cond_embed.2');
      capture('cond_embeds', cond);

      const side = Math.round(Math.sqrt(t));
      const ids = tf.reshape(tf.cast(inputIds, 'int32'), [b, side, side]);
      let x = this.norm(tf.gather(this.w('embed.embeddings.weight'), ids), 'embed.layer_norm');
      x = this.conv1x1(x, 'embed.conv');
      capture('embed', x);

      let g = x as tf.Tensor4D;
      if (cfg.force_down_up_sample) {
        const w = tf.transpose(this.w('down_blocks.0.downsample.1.weight'), [2, 3, 1, 0]) as tf.Tensor4D;
        g = tf.conv2d(this.norm(g, 'down_blocks.0.downsample.0.norm') as tf.Tensor4D, w, 2, 'valid');
        const bb = this.params.maybe('down_blocks.0.downsample.1.bias');
        if (bb) g = tf.add(g, bb);
      }
      g = this.blocks(g, cond, ehs, bias, 'down_blocks.0', training);
      capture('down', g);
      const [, gh, gw, c] = g.shape;

      let h = this.lin(this.norm(tf.reshape(g, [b, gh * gw, c]), 'project_to_hidden_norm'), 'project_to_hidden');
      let residual: tf.Tensor | undefined;
      for (let i = 0; i < cfg.num_hidden_layers; i++)
        [h, residual] = this.layer(h, residual, ehs, cond, bias, i, training);
      h = residual ? tf.add(h, residual) : h;
      h = this.lin(this.norm(h, 'project_from_hidden_norm'), 'project_from_hidden');
      capture('transformer', h);

      g = this.blocks(tf.reshape(h, [b, gh, gw, c]), cond, ehs, bias, 'up_blocks.0', training);
      if (cfg.force_down_up_sample) {
        // ConvTranspose2d weight [in, out, kH, kW] -> tf's [kH, kW, out, in].
        const w = tf.transpose(this.w('up_blocks.0.upsample.1.weight'), [2, 3, 1, 0]) as tf.Tensor4D;
        const normed = this.norm(g, 'up_blocks.0.upsample.0.norm') as tf.Tensor4D;
        g = tf.conv2dTranspose(normed, w, [b, gh * 2, gw * 2, c], 2, 'valid');
        const bb = this.params.maybe('up_blocks.0.upsample.1.bias');
        if (bb) g = tf.add(g, bb);
      }
      capture('up', g);

      let y = this.conv1x1(g, 'mlm_layer.conv1');
      y = this.norm(y, 'mlm_layer.layer_norm.norm');
      y = this.conv1x1(y, 'mlm_layer.conv2');
      return tf.reshape(y, [b, t, cfg.codebook_size]) as tf.Tensor3D;
    });
  }

  forwardWithLoss(
    inputIds: tf.Tensor,
    labels: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: UViTForwardOptions & { labelSmoothing?: number } = {},
  ): { logits: tf.Tensor3D; loss: tf.Scalar } {
    const logits = this.forward(inputIds, encoderHiddenStates, encoderAttentionMask, opts);
    return { logits, loss: maskedCrossEntropy(logits, labels, opts.labelSmoothing ?? 0) };
  }

  lossAndGrads(
    inputIds: tf.Tensor,
    labels: tf.Tensor,
    encoderHiddenStates?: tf.Tensor,
    encoderAttentionMask?: tf.Tensor,
    opts: UViTForwardOptions & { labelSmoothing?: number } = {},
  ): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
    return lossAndParamGrads(this.params, () => {
      const { logits, loss } = this.forwardWithLoss(inputIds, labels, encoderHiddenStates, encoderAttentionMask, opts);
      logits.dispose();
      return loss;
    });
  }
}
