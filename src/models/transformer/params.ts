// Parameters of MaskGitTransformer under open-muse's state_dict names, with the reference initialisation
// (trunc_normal std=initializer_range for Linear and Embedding, norms 1, biases 0) from a seeded PRNG.
import { ParamStore } from '../layers/params.ts';
import { Prng } from '../layers/prng.ts';
import { outputSize, type MaskGitTransformerConfig } from './config.ts';

/** `seed` draws the reference initialisation; `null` leaves zeros (weights about to be loaded). */
export function buildTransformerParams(cfg: MaskGitTransformerConfig, seed: number | null = 0): ParamStore {
  const p = new ParamStore();
  const rng = seed === null ? undefined : new Prng(seed);
  const std = cfg.initializer_range;
  const D = cfg.hidden_size;
  const normal = (shape: number[]) =>
    rng
      ? rng.normalArray(
          shape.reduce((a, b) => a * b, 1),
          std,
          2,
        )
      : ('zeros' as const);
  const lin = (name: string, out: number, inp: number, init: 'normal' | 'zeros' = 'normal') => {
    p.add(`${name}.weight`, [out, inp], init === 'zeros' ? 'zeros' : normal([out, inp]));
    if (cfg.use_bias) p.add(`${name}.bias`, [out], 'zeros');
  };
  // `layer`: LayerNorm (bias when use_bias) regardless of norm_type; `norm`: the configured norm class.
  const layerNorm = (name: string, dim: number) => {
    p.add(`${name}.weight`, [dim], 'ones');
    if (cfg.use_bias) p.add(`${name}.bias`, [dim], 'zeros');
  };
  const norm = (name: string, dim: number) =>
    cfg.norm_type === 'layernorm' ? layerNorm(name, dim) : p.add(`${name}.weight`, [dim], 'ones');

  p.add('embed.word_embeddings.weight', [cfg.vocab_size, D], normal([cfg.vocab_size, D]));
  p.add('embed.position_embeddings.weight', [cfg.max_position_embeddings, D], normal([cfg.max_position_embeddings, D]));
  let encDim = cfg.encoder_hidden_size;
  if (cfg.project_encoder_hidden_states) {
    lin('encoder_proj', D, encDim);
    norm('encoder_proj_layer_norm', D);
    encDim = D;
  }
  if (cfg.self_conditioning) lin('self_cond_proj', D, D);
  if (cfg.add_cond_embeds) {
    lin('cond_embed.0', D, cfg.cond_embed_dim!);
    lin('cond_embed.2', D, D);
  }
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const l = `transformer_layers.${i}`;
    norm(`${l}.attn_layer_norm`, D);
    for (const w of ['query', 'key', 'value', 'out']) lin(`${l}.attention.${w}`, D, D);
    if (cfg.use_normformer) norm(`${l}.post_attn_layer_norm`, D);
    if (cfg.add_cross_attention) {
      norm(`${l}.crossattn_layer_norm`, D);
      lin(`${l}.crossattention.query`, D, D);
      lin(`${l}.crossattention.key`, D, encDim);
      lin(`${l}.crossattention.value`, D, encDim);
      lin(`${l}.crossattention.out`, D, D);
      if (cfg.use_normformer) norm(`${l}.post_crossattn_layer_norm`, D);
    }
    // The reference's FeedForward always uses its LayerNorm class here, even with norm_type rmsnorm.
    layerNorm(`${l}.ffn.pre_mlp_layer_norm`, D);
    lin(`${l}.ffn.wi_0`, cfg.intermediate_size, D);
    if (cfg.ffn_type === 'glu') lin(`${l}.ffn.wi_1`, cfg.intermediate_size, D);
    if (cfg.use_normformer) norm(`${l}.ffn.mid_mlp_layer_norm`, cfg.intermediate_size);
    lin(`${l}.ffn.wo`, D, cfg.intermediate_size);
    if (cfg.add_cond_embeds) {
      // AdaLN mappers start at zero (as open-muse initialises them): conditioning is the identity at step 0.
      lin(`${l}.self_attn_adaLN_modulation.mapper`, 2 * D, D, 'zeros');
      if (cfg.add_cross_attention) lin(`${l}.cross_attn_adaLN_modulation.mapper`, 2 * D, D, 'zeros');
      lin(`${l}.ffn.adaLN_modulation.mapper`, 2 * D, D, 'zeros');
    }
  }
  if (cfg.use_encoder_layernorm) norm('encoder_layer_norm', D);
  if (cfg.use_mlm_layer) {
    lin('mlm_layer.mlm_dense', D, D);
    if (cfg.use_mlm_layernorm) norm('mlm_layer.mlm_ln', D);
    lin('mlm_layer.to_logits', outputSize(cfg), D);
  } else {
    lin('to_logits', outputSize(cfg), D);
  }
  return p;
}
