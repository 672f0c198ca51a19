// Configuration of the super-resolution transformer (MUSE's second stage, arXiv 2301.00704 §2.3): a masked
// transformer over the high-resolution tokens that cross-attends to the embedded low-resolution tokens (after
// a few self-attention layers of their own) concatenated with the projected text states.

export interface SuperResConfig {
  /** High-res VQ codebook (the targets) and vocab = codebook + mask (mask_token_id = vocab_size - 1). */
  codebook_size: number;
  vocab_size: number;
  mask_token_id: number;
  /** High-res tokens per image (a square grid, e.g. 64x64 = 4096). */
  num_vq_tokens: number;
  /** Low-res (base) VQ codebook and tokens per image (e.g. 16x16 = 256). */
  lowres_codebook_size: number;
  num_lowres_tokens: number;
  hidden_size: number;
  num_hidden_layers: number;
  /** Self-attention layers over the embedded low-res tokens before they are used as context. */
  num_lowres_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  encoder_hidden_size: number;
  norm_type: 'layernorm' | 'rmsnorm';
  layer_norm_eps: number;
  use_bias: boolean;
  hidden_dropout: number;
  attention_dropout: number;
  initializer_range: number;
  /** Self-attention over the high-res tokens: full, or multi_axis (half the heads b×b blocks, half g×g grids). */
  attention: 'full' | 'multi_axis';
  block_size: number;
  grid_size: number;
  // Stated for the trainer and sampler (shared with the other token models).
  add_cross_attention: true;
  add_cond_embeds: false;
  cond_embed_dim: null;
  num_classes: null;
}

type Derived = 'mask_token_id' | 'add_cross_attention' | 'add_cond_embeds' | 'cond_embed_dim' | 'num_classes';

export const SUPERRES_DEFAULTS: Omit<SuperResConfig, Derived> = {
  codebook_size: 8192,
  vocab_size: 8193,
  num_vq_tokens: 4096,
  lowres_codebook_size: 8192,
  num_lowres_tokens: 256,
  hidden_size: 1024,
  num_hidden_layers: 16,
  num_lowres_layers: 2,
  num_attention_heads: 16,
  intermediate_size: 4096,
  encoder_hidden_size: 4096,
  norm_type: 'rmsnorm',
  layer_norm_eps: 1e-6,
  use_bias: false,
  hidden_dropout: 0,
  attention_dropout: 0,
  initializer_range: 0.02,
  attention: 'full',
  block_size: 8,
  grid_size: 8,
};

const KEYS = new Set(Object.keys(SUPERRES_DEFAULTS));

export function superResConfig(partial: Record<string, unknown>): SuperResConfig {
  const picked: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(partial)) {
    if (KEYS.has(k)) {
      if (v !== undefined && v !== null) picked[k] = v;
    } else if (!k.startsWith('_') && k !== 'mask_token_id') unknown.push(k);
  }
  const fail = (why: string) => {
    throw new Error(`super-res transformer config: ${why}`);
  };
  if (unknown.length) fail(`unknown key(s) ${unknown.join(', ')} (known: ${[...KEYS].join(', ')})`);
  const merged = { ...SUPERRES_DEFAULTS, ...picked } as Omit<SuperResConfig, Derived>;
  if (picked.vocab_size === undefined) merged.vocab_size = merged.codebook_size + 1;
  const cfg: SuperResConfig = {
    ...merged,
    mask_token_id: merged.vocab_size - 1,
    add_cross_attention: true,
    add_cond_embeds: false,
    cond_embed_dim: null,
    num_classes: null,
  };
  for (const k of ['num_vq_tokens', 'num_lowres_tokens'] as const) {
    const side = Math.round(Math.sqrt(cfg[k]));
    if (side * side !== cfg[k]) fail(`${k} ${cfg[k]} is not a square grid`);
  }
  if (cfg.codebook_size >= cfg.vocab_size)
    fail(`codebook_size ${cfg.codebook_size} must be < vocab_size ${cfg.vocab_size}`);
  if (cfg.hidden_size % cfg.num_attention_heads)
    fail(`hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`);
  if (cfg.attention !== 'full' && cfg.attention !== 'multi_axis')
    fail(`attention '${cfg.attention}' (expected full or multi_axis)`);
  if (cfg.norm_type !== 'layernorm' && cfg.norm_type !== 'rmsnorm') fail(`unknown norm_type '${cfg.norm_type}'`);
  if (cfg.attention === 'multi_axis') {
    const side = Math.round(Math.sqrt(cfg.num_vq_tokens));
    if (cfg.num_attention_heads % 2)
      fail(`attention multi_axis needs an even num_attention_heads, got ${cfg.num_attention_heads}`);
    if (side % cfg.block_size) fail(`block_size ${cfg.block_size} does not divide the ${side}x${side} token grid`);
    if (side % cfg.grid_size) fail(`grid_size ${cfg.grid_size} does not divide the ${side}x${side} token grid`);
  }
  return cfg;
}

export function superResConfigJson(cfg: SuperResConfig): Record<string, unknown> {
  const { add_cross_attention, add_cond_embeds, cond_embed_dim, num_classes, ...rest } = cfg;
  void add_cross_attention;
  void add_cond_embeds;
  void cond_embed_dim;
  void num_classes;
  return { _class_name: 'MuseSuperResTransformer', ...rest };
}
