// Parameters of the super-res transformer, named in open-muse's MaskGitTransformer style (query/key/value/out,
// ffn.wi_0/wi_1/wo, mlm_layer), with its init: trunc_normal(initializer_range) for Linear and Embedding,
// norms 1, biases 0.
import { ParamStore } from '../layers/params.ts';
import { Prng } from '../layers/prng.ts';
import type { SuperResConfig } from './config.ts';

export function buildSuperResParams(cfg: SuperResConfig, seed: number | null = 0): ParamStore {
  const p = new ParamStore();
  const rng = seed === null ? undefined : new Prng(seed);
  const D = cfg.hidden_size;
  const normal = (shape: number[]) =>
    rng
      ? rng.normalArray(
          shape.reduce((a, b) => a * b, 1),
          cfg.initializer_range,
          2,
        )
      : ('zeros' as const);
  const lin = (name: string, out: number, inp: number) => {
    p.add(`${name}.weight`, [out, inp], normal([out, inp]));
    if (cfg.use_bias) p.add(`${name}.bias`, [out], 'zeros');
  };
  const norm = (name: string, dim: number) => {
    p.add(`${name}.weight`, [dim], 'ones');
    if (cfg.norm_type === 'layernorm' && cfg.use_bias) p.add(`${name}.bias`, [dim], 'zeros');
  };
  const layer = (l: string, cross: boolean) => {
    norm(`${l}.attn_layer_norm`, D);
    for (const w of ['query', 'key', 'value', 'out']) lin(`${l}.attention.${w}`, D, D);
    if (cross) {
      norm(`${l}.crossattn_layer_norm`, D);
      for (const w of ['query', 'key', 'value', 'out']) lin(`${l}.crossattention.${w}`, D, D);
    }
    norm(`${l}.ffn.pre_mlp_layer_norm`, D);
    lin(`${l}.ffn.wi_0`, cfg.intermediate_size, D);
    lin(`${l}.ffn.wi_1`, cfg.intermediate_size, D);
    lin(`${l}.ffn.wo`, D, cfg.intermediate_size);
  };
  p.add('embed.word_embeddings.weight', [cfg.vocab_size, D], normal([cfg.vocab_size, D]));
  p.add('embed.position_embeddings.weight', [cfg.num_vq_tokens, D], normal([cfg.num_vq_tokens, D]));
  p.add('lowres_embed.word_embeddings.weight', [cfg.lowres_codebook_size, D], normal([cfg.lowres_codebook_size, D]));
  p.add('lowres_embed.position_embeddings.weight', [cfg.num_lowres_tokens, D], normal([cfg.num_lowres_tokens, D]));
  for (let i = 0; i < cfg.num_lowres_layers; i++) layer(`lowres_layers.${i}`, false);
  norm('lowres_layer_norm', D);
  lin('encoder_proj', D, cfg.encoder_hidden_size);
  norm('encoder_proj_layer_norm', D);
  for (let i = 0; i < cfg.num_hidden_layers; i++) layer(`transformer_layers.${i}`, true);
  norm('encoder_layer_norm', D);
  lin('mlm_layer.mlm_dense', D, D);
  norm('mlm_layer.mlm_ln', D);
  lin('mlm_layer.to_logits', cfg.codebook_size, D);
  return p;
}
