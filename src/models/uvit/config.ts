// MaskGiTUViT configuration: the fields of open-muse's `MaskGiTUViT_v2Config` (muse/modeling_transformer_v2.py,
// the architecture of the aMUSEd 256 and 512 checkpoints) under their snake_case names, so a reference
// config.json loads and ours loads in PyTorch; then our own keys (the reference ignores unknown keys).

export interface MaskGiTUViTConfig {
  hidden_size: number;
  use_bias: boolean;
  hidden_dropout: number;
  /** Width of the pooled text vector (CLIP text_embeds) fed to AdaLN. */
  cond_embed_dim: number;
  /** Sinusoidal width per micro-condition; micro_cond_embed_dim / micro_cond_encode_dim conditions. */
  micro_cond_encode_dim: number;
  micro_cond_embed_dim: number;
  encoder_hidden_size: number;
  vocab_size: number;
  /** Always vocab_size - 1 (the reference re-registers it so). */
  mask_token_id: number;
  codebook_size: number;
  /** Width of the token embedding (before the 1x1 conv into the blocks). */
  in_channels: number;
  /** Exactly one entry: the width of the conv blocks. */
  block_out_channels: number[];
  num_res_blocks: number;
  /** A 2x2 stride-2 conv before the down block's res blocks and a 2x2 transposed conv after the up block's. */
  force_down_up_sample: boolean;
  block_num_heads: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  attention_dropout: number;
  intermediate_size: number;
  norm_type: 'layernorm' | 'rmsnorm';
  layer_norm_eps: number;
  ln_elementwise_affine: boolean;
  // Ours (not reference keys). The trainer, sampler and loader read them; open-muse ignores them.
  /** Tokens per image (a square grid). */
  num_vq_tokens: number;
  /**
   * Micro-conditions given when the batch has none: [orig_width, orig_height, crop_top, crop_left,
   * aesthetic_score], as open-muse's training script passes at validation ([res, res, 0, 0, 6]).
   */
  default_micro_conds: number[];
  /** Stated for the trainer and sampler (this architecture always cross-attends and always uses AdaLN). */
  add_cross_attention: true;
  add_cond_embeds: true;
  num_classes: null;
}

type Derived = 'mask_token_id' | 'add_cross_attention' | 'add_cond_embeds' | 'num_classes';

export const UVIT_DEFAULTS: Omit<MaskGiTUViTConfig, Derived> = {
  hidden_size: 1024,
  use_bias: false,
  hidden_dropout: 0,
  cond_embed_dim: 768,
  micro_cond_encode_dim: 256,
  micro_cond_embed_dim: 1280,
  encoder_hidden_size: 768,
  vocab_size: 8256,
  codebook_size: 8192,
  in_channels: 768,
  block_out_channels: [768],
  num_res_blocks: 3,
  force_down_up_sample: false,
  block_num_heads: 12,
  num_hidden_layers: 22,
  num_attention_heads: 16,
  attention_dropout: 0,
  intermediate_size: 2816,
  norm_type: 'rmsnorm',
  layer_norm_eps: 1e-6,
  ln_elementwise_affine: true,
  num_vq_tokens: 256,
  default_micro_conds: [256, 256, 0, 0, 6],
};

/** Keys of MaskGiTUViT_v2Config (what the reference's config.json holds). */
export const UVIT_REFERENCE_KEYS = [
  'hidden_size',
  'use_bias',
  'hidden_dropout',
  'cond_embed_dim',
  'micro_cond_encode_dim',
  'micro_cond_embed_dim',
  'encoder_hidden_size',
  'vocab_size',
  'mask_token_id',
  'codebook_size',
  'in_channels',
  'block_out_channels',
  'num_res_blocks',
  'force_down_up_sample',
  'block_num_heads',
  'num_hidden_layers',
  'num_attention_heads',
  'attention_dropout',
  'intermediate_size',
  'use_fused_mlp',
  'norm_type',
  'layer_norm_eps',
  'ln_elementwise_affine',
  'use_fused_residual_norm',
  'add_cond_embeds',
  'add_micro_cond_embeds',
] as const;

export const UVIT_OWN_KEYS = ['num_vq_tokens', 'default_micro_conds'] as const;
const OURS = UVIT_OWN_KEYS;

/**
 * Keys of open-muse's v1 MaskGiTUViT / training configs that v2 ignores (its config_from_legacy_kwargs drops
 * them); accepted so those configs load, and checked where they contradict v2.
 */
export const UVIT_LEGACY_KEYS: ReadonlySet<string> = new Set([
  'block_has_attention',
  'res_ffn_factor',
  'patch_size',
  'add_cross_attention',
  'project_encoder_hidden_states',
  'initializer_range',
  'use_encoder_layernorm',
  'use_codebook_size_for_output',
  'use_empty_embeds_for_uncond',
  'max_position_embeddings',
  'use_normformer',
  'use_mlm_layer',
  'use_mlm_layernorm',
  'num_classes',
]);

/** Number of micro-conditions (5 in aMUSEd: original size, crop coordinates, aesthetic score). */
export function numMicroConds(cfg: MaskGiTUViTConfig): number {
  return cfg.micro_cond_embed_dim / cfg.micro_cond_encode_dim;
}

/** Token grid side inside the transformer (halved by force_down_up_sample). */
export function gridSide(cfg: MaskGiTUViTConfig): number {
  const side = Math.round(Math.sqrt(cfg.num_vq_tokens));
  return cfg.force_down_up_sample ? side / 2 : side;
}

/**
 * Fills defaults and checks what this implementation supports. Reference legacy keys (the v1 MaskGiTUViT
 * config: num_vq_tokens, add_cross_attention, res_ffn_factor, ...) are accepted where they agree with v2.
 */
export function uvitConfig(partial: Record<string, unknown>): MaskGiTUViTConfig {
  const known = new Set<string>([...UVIT_REFERENCE_KEYS, ...OURS]);
  const picked: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(partial)) {
    if (known.has(k)) {
      if (v !== undefined && v !== null) picked[k] = v;
    } else if (!k.startsWith('_') && !UVIT_LEGACY_KEYS.has(k)) {
      unknown.push(k);
    }
  }
  if (unknown.length)
    throw new Error(`MaskGiTUViT config: unknown key(s) ${unknown.join(', ')} (known: ${[...known].join(', ')})`);
  if (partial.num_classes != null)
    throw new Error(
      'MaskGiTUViT config: num_classes: this architecture is text-conditioned only (use architecture: transformer for class conditioning)',
    );
  if (partial.add_cross_attention === false)
    throw new Error(
      'MaskGiTUViT config: add_cross_attention false: this architecture always cross-attends to the text states',
    );
  let blockHeads = picked.block_num_heads;
  if (Array.isArray(blockHeads)) {
    if (blockHeads.length !== 1)
      throw new Error(`MaskGiTUViT: block_num_heads must have one entry, got [${blockHeads}]`);
    blockHeads = blockHeads[0];
  }
  const merged = { ...UVIT_DEFAULTS, ...picked, block_num_heads: blockHeads ?? UVIT_DEFAULTS.block_num_heads } as Omit<
    MaskGiTUViTConfig,
    Derived
  >;
  const cfg: MaskGiTUViTConfig = {
    ...merged,
    block_out_channels: [...merged.block_out_channels],
    default_micro_conds: [...merged.default_micro_conds],
    mask_token_id: merged.vocab_size - 1,
    add_cross_attention: true,
    add_cond_embeds: true,
    num_classes: null,
  };
  const fail = (why: string) => {
    throw new Error(`MaskGiTUViT config: ${why}`);
  };
  if (partial.use_fused_mlp) fail('use_fused_mlp (flash-attn fused GELU MLP) is not supported');
  if (partial.use_fused_residual_norm) fail('use_fused_residual_norm (flash-attn) is not supported');
  if (partial.res_ffn_factor !== undefined && partial.res_ffn_factor !== 4)
    fail(`res_ffn_factor ${partial.res_ffn_factor}: the v2 architecture fixes it at 4`);
  if (cfg.block_out_channels.length !== 1)
    fail(`block_out_channels must have exactly one entry, got [${cfg.block_out_channels}]`);
  if (cfg.norm_type !== 'layernorm' && cfg.norm_type !== 'rmsnorm') fail(`unknown norm_type '${cfg.norm_type}'`);
  if (cfg.hidden_size % cfg.num_attention_heads)
    fail(`hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`);
  if (cfg.block_out_channels[0] % cfg.block_num_heads)
    fail(
      `block_out_channels[0] ${cfg.block_out_channels[0]} is not divisible by block_num_heads ${cfg.block_num_heads}`,
    );
  if (cfg.micro_cond_encode_dim % 2) fail(`micro_cond_encode_dim ${cfg.micro_cond_encode_dim} must be even`);
  if (!Number.isInteger(numMicroConds(cfg)))
    fail(
      `micro_cond_embed_dim ${cfg.micro_cond_embed_dim} is not a multiple of micro_cond_encode_dim ${cfg.micro_cond_encode_dim}`,
    );
  if (cfg.default_micro_conds.length !== numMicroConds(cfg)) {
    fail(
      `default_micro_conds has ${cfg.default_micro_conds.length} values, the model takes ${numMicroConds(cfg)} (micro_cond_embed_dim / micro_cond_encode_dim)`,
    );
  }
  const side = Math.round(Math.sqrt(cfg.num_vq_tokens));
  if (side * side !== cfg.num_vq_tokens) fail(`num_vq_tokens ${cfg.num_vq_tokens} is not a square grid`);
  if (cfg.force_down_up_sample && side % 2)
    fail(`force_down_up_sample needs an even grid side, num_vq_tokens ${cfg.num_vq_tokens} has side ${side}`);
  if (cfg.codebook_size >= cfg.vocab_size)
    fail(
      `codebook_size ${cfg.codebook_size} must be < vocab_size ${cfg.vocab_size} (the mask token is vocab_size - 1)`,
    );
  return cfg;
}

/** The config.json we write: the reference's keys (with its class name) first, then ours. */
export function uvitConfigJson(cfg: MaskGiTUViTConfig): Record<string, unknown> {
  return {
    _class_name: 'MaskGiTUViT_v2',
    _version: '0.0.1',
    hidden_size: cfg.hidden_size,
    use_bias: cfg.use_bias,
    hidden_dropout: cfg.hidden_dropout,
    cond_embed_dim: cfg.cond_embed_dim,
    micro_cond_encode_dim: cfg.micro_cond_encode_dim,
    micro_cond_embed_dim: cfg.micro_cond_embed_dim,
    encoder_hidden_size: cfg.encoder_hidden_size,
    vocab_size: cfg.vocab_size,
    mask_token_id: cfg.mask_token_id,
    codebook_size: cfg.codebook_size,
    in_channels: cfg.in_channels,
    block_out_channels: cfg.block_out_channels,
    num_res_blocks: cfg.num_res_blocks,
    force_down_up_sample: cfg.force_down_up_sample,
    block_num_heads: cfg.block_num_heads,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    attention_dropout: cfg.attention_dropout,
    intermediate_size: cfg.intermediate_size,
    use_fused_mlp: false,
    norm_type: cfg.norm_type,
    layer_norm_eps: cfg.layer_norm_eps,
    ln_elementwise_affine: cfg.ln_elementwise_affine,
    use_fused_residual_norm: false,
    add_cond_embeds: true,
    add_micro_cond_embeds: true,
    num_vq_tokens: cfg.num_vq_tokens,
    default_micro_conds: cfg.default_micro_conds,
  };
}
