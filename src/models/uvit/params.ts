// Parameters of MaskGiTUViT under open-muse's state_dict names (MaskGiTUViT_v2), with the reference
// initialisation from a seeded PRNG: trunc_normal(0.02) for Linear and Conv2d, xavier_uniform(gain 0.02) for
// the embedding conv, N(0, 1/vocab) embeddings, zero AdaLN mappers and output conv1, the output conv2 tied at
// init to the first codebook_size embedding rows, norms 1, biases 0, GRN gamma/beta 0.
import { ParamStore } from '../layers/params.ts';
import { Prng } from '../layers/prng.ts';
import type { MaskGiTUViTConfig } from './config.ts';

export function buildUViTParams(cfg: MaskGiTUViTConfig, seed: number | null = 0): ParamStore {
  const p = new ParamStore();
  const rng = seed === null ? undefined : new Prng(seed);
  const D = cfg.hidden_size;
  const C = cfg.block_out_channels[0];
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const normal = (shape: number[], std = 0.02) => (rng ? rng.normalArray(size(shape), std, 2) : ('zeros' as const));
  const bias = (name: string, out: number) => {
    if (cfg.use_bias) p.add(`${name}.bias`, [out], 'zeros');
  };
  const lin = (name: string, out: number, inp: number, init: 'normal' | 'zeros' = 'normal') => {
    p.add(`${name}.weight`, [out, inp], init === 'zeros' ? 'zeros' : normal([out, inp]));
    bias(name, out);
  };
  const conv = (name: string, shape: [number, number, number, number]) => {
    p.add(`${name}.weight`, shape, normal(shape));
    bias(name, shape[0]);
  };
  // LayerNorm: weight (+ bias with use_bias) when ln_elementwise_affine; RMSNorm: weight only.
  const layerNorm = (name: string, dim: number) => {
    if (!cfg.ln_elementwise_affine) return;
    p.add(`${name}.weight`, [dim], 'ones');
    if (cfg.use_bias) p.add(`${name}.bias`, [dim], 'zeros');
  };
  const norm = (name: string, dim: number) => {
    if (cfg.norm_type === 'layernorm') layerNorm(name, dim);
    else if (cfg.ln_elementwise_affine) p.add(`${name}.weight`, [dim], 'ones');
  };
  const adaLN = (name: string, dim: number) => lin(`${name}.mapper`, 2 * dim, D, 'zeros');
  const attention = (name: string, dim: number, ctx: number) => {
    lin(`${name}.query`, dim, dim);
    lin(`${name}.key`, dim, ctx);
    lin(`${name}.value`, dim, ctx);
    lin(`${name}.out`, dim, dim);
  };
  const resBlock = (name: string) => {
    conv(`${name}.depthwise`, [C, 1, 3, 3]);
    norm(`${name}.norm.norm`, C);
    lin(`${name}.channelwise.0`, 4 * C, C);
    p.add(`${name}.channelwise.2.gamma`, [1, 1, 1, 4 * C], 'zeros');
    p.add(`${name}.channelwise.2.beta`, [1, 1, 1, 4 * C], 'zeros');
    lin(`${name}.channelwise.4`, C, 4 * C);
    adaLN(`${name}.adaLN_modulation`, C);
  };
  const attentionBlock = (name: string) => {
    if (D !== C) lin(`${name}.kv_mapper`, C, D);
    norm(`${name}.attn_layer_norm`, C);
    attention(`${name}.attention`, C, C);
    norm(`${name}.crossattn_layer_norm`, C);
    attention(`${name}.crossattention`, C, C);
  };
  const blocks = (name: string) => {
    for (let i = 0; i < cfg.num_res_blocks; i++) resBlock(`${name}.res_blocks.${i}`);
    for (let i = 0; i < cfg.num_res_blocks; i++) attentionBlock(`${name}.attention_blocks.${i}`);
  };

  lin('encoder_proj', D, cfg.encoder_hidden_size);
  norm('encoder_proj_layer_norm', D);

  const emb = rng ? rng.normalArray(cfg.vocab_size * cfg.in_channels, Math.sqrt(1 / cfg.vocab_size)) : undefined;
  p.add('embed.embeddings.weight', [cfg.vocab_size, cfg.in_channels], emb ?? 'zeros');
  norm('embed.layer_norm', cfg.in_channels);
  // xavier_uniform_(gain=0.02) on a 1x1 conv: bound = 0.02 * sqrt(6 / (fan_in + fan_out)).
  const bound = 0.02 * Math.sqrt(6 / (cfg.in_channels + C));
  const embedConv = rng
    ? Float32Array.from({ length: C * cfg.in_channels }, () => (2 * rng.uniform() - 1) * bound)
    : ('zeros' as const);
  p.add('embed.conv.weight', [C, cfg.in_channels, 1, 1], embedConv);
  bias('embed.conv', C);

  lin('cond_embed.0', D, cfg.micro_cond_embed_dim + cfg.cond_embed_dim);
  lin('cond_embed.2', D, D);

  if (cfg.force_down_up_sample) {
    norm('down_blocks.0.downsample.0.norm', C);
    conv('down_blocks.0.downsample.1', [C, C, 2, 2]);
  }
  blocks('down_blocks.0');

  norm('project_to_hidden_norm', C);
  lin('project_to_hidden', D, C);
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const l = `transformer_layers.${i}`;
    norm(`${l}.attn_layer_norm`, D);
    adaLN(`${l}.self_attn_adaLN_modulation`, D);
    attention(`${l}.attention`, D, D);
    norm(`${l}.crossattn_layer_norm`, D);
    attention(`${l}.crossattention`, D, D);
    adaLN(`${l}.cross_attn_adaLN_modulation`, D);
    // GLUFeedForward always uses the LayerNorm class here, whatever norm_type says.
    layerNorm(`${l}.ffn.pre_mlp_layer_norm`, D);
    adaLN(`${l}.ffn.adaLN_modulation`, D);
    lin(`${l}.ffn.wi_0`, cfg.intermediate_size, D);
    lin(`${l}.ffn.wi_1`, cfg.intermediate_size, D);
    lin(`${l}.ffn.wo`, D, cfg.intermediate_size);
  }
  norm('project_from_hidden_norm', D);
  lin('project_from_hidden', C, D);

  blocks('up_blocks.0');
  if (cfg.force_down_up_sample) {
    norm('up_blocks.0.upsample.0.norm', C);
    // ConvTranspose2d weight layout: [in, out, kH, kW].
    p.add('up_blocks.0.upsample.1.weight', [C, C, 2, 2], normal([C, C, 2, 2]));
    bias('up_blocks.0.upsample.1', C);
  }

  p.add('mlm_layer.conv1.weight', [cfg.in_channels, C, 1, 1], 'zeros');
  bias('mlm_layer.conv1', cfg.in_channels);
  norm('mlm_layer.layer_norm.norm', cfg.in_channels);
  const tied = emb ? emb.slice(0, cfg.codebook_size * cfg.in_channels) : ('zeros' as const);
  p.add('mlm_layer.conv2.weight', [cfg.codebook_size, cfg.in_channels, 1, 1], tied);
  bias('mlm_layer.conv2', cfg.codebook_size);
  return p;
}
