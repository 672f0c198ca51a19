// MaskGitTransformer configuration: the keys and defaults of open-muse's `MaskGitTransformer.__init__`
// (snake_case, so a reference config.json loads and ours loads in PyTorch), plus our options at the end.

export interface MaskGitTransformerConfig {
  /** codebook_size + 1 (mask); with class conditioning codebook_size + num_classes + 1. */
  vocab_size: number;
  hidden_size: number;
  embedding_size: number | null;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_dropout: number;
  attention_dropout: number;
  /** num_vq_tokens, + 1 with a prepended class token. */
  max_position_embeddings: number;
  add_cross_attention: boolean;
  encoder_hidden_size: number;
  project_encoder_hidden_states: boolean;
  initializer_range: number;
  norm_type: 'layernorm' | 'rmsnorm';
  layer_norm_eps: number;
  use_normformer: boolean;
  use_encoder_layernorm: boolean;
  use_mlm_layer: boolean;
  use_mlm_layernorm: boolean;
  use_bias: boolean;
  codebook_size: number;
  num_vq_tokens: number;
  num_classes: number | null;
  use_codebook_size_for_output: boolean;
  use_conv_in_out: boolean;
  patch_size: number;
  /** Always vocab_size - 1 (the reference registers it so). */
  mask_token_id: number;
  /** FeedForward type: 'glu' = wo(gelu(wi_0 x) · wi_1 x) (the reference default), 'vanilla' = wo(gelu(wi_0 x)). */
  ffn_type: 'glu' | 'vanilla';
  /** Pooled-text (AdaLN) conditioning as in open-muse's MaskGiTUViT / aMUSEd. */
  add_cond_embeds: boolean;
  cond_embed_dim: number | null;
  /**
   * Class-conditional models: one more class token, id num_classes ("no class"), that class dropout trains
   * (training.cond_dropout_prob) so sampling can use classifier-free guidance against it.
   */
  null_class: boolean;
  /**
   * Self-conditioning (Bit Diffusion): the model also takes its previous prediction as soft tokens
   * (probabilities over the codebook, embedded with the token embeddings and projected by self_cond_proj).
   */
  self_conditioning: boolean;
}

export const TRANSFORMER_DEFAULTS: Omit<MaskGitTransformerConfig, 'vocab_size' | 'mask_token_id'> = {
  hidden_size: 768,
  embedding_size: null,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_dropout: 0.1,
  attention_dropout: 0.1,
  max_position_embeddings: 256,
  add_cross_attention: false,
  encoder_hidden_size: 1024,
  project_encoder_hidden_states: false,
  initializer_range: 0.02,
  norm_type: 'layernorm',
  layer_norm_eps: 1e-5,
  use_normformer: true,
  use_encoder_layernorm: true,
  use_mlm_layer: true,
  use_mlm_layernorm: true,
  use_bias: false,
  codebook_size: 1024,
  num_vq_tokens: 256,
  num_classes: null,
  use_codebook_size_for_output: false,
  use_conv_in_out: false,
  patch_size: 1,
  ffn_type: 'glu',
  add_cond_embeds: false,
  cond_embed_dim: null,
  null_class: false,
  self_conditioning: false,
};

/** Fills defaults, derives mask_token_id and checks what this implementation supports. */
export function transformerConfig(
  partial: Partial<MaskGitTransformerConfig> & Record<string, unknown>,
): MaskGitTransformerConfig {
  const known = Object.fromEntries(
    Object.entries(partial).filter(([k, v]) => !k.startsWith('_') && v !== undefined),
  ) as Partial<MaskGitTransformerConfig>;
  const merged = { ...TRANSFORMER_DEFAULTS, ...known };
  const classTokens = (merged.num_classes ?? 0) + (merged.null_class ? 1 : 0);
  const vocab = merged.vocab_size ?? merged.codebook_size + classTokens + 1;
  const cfg: MaskGitTransformerConfig = { ...merged, vocab_size: vocab, mask_token_id: vocab - 1 };
  if (cfg.use_conv_in_out)
    throw new Error('MaskGitTransformer: use_conv_in_out (ConvEmbed / ConvMlmLayer) is not supported');
  if (cfg.hidden_size % cfg.num_attention_heads)
    throw new Error('hidden_size must be divisible by num_attention_heads');
  if (cfg.norm_type !== 'layernorm' && cfg.norm_type !== 'rmsnorm')
    throw new Error(`unknown norm_type ${cfg.norm_type}`);
  if (cfg.add_cond_embeds && !cfg.cond_embed_dim) throw new Error('add_cond_embeds needs cond_embed_dim');
  if (cfg.null_class && cfg.num_classes == null)
    throw new Error('null_class needs num_classes (it adds a "no class" token to the class tokens)');
  if (cfg.codebook_size + classTokens > cfg.mask_token_id) {
    throw new Error(
      `vocab_size ${cfg.vocab_size} is too small for ${cfg.codebook_size} codes + ${classTokens} class tokens + the mask token`,
    );
  }
  return cfg;
}

/** open-muse's class (muse/modeling_transformer.py): GLU FFN, no pooled-text conditioning. */
export const REFERENCE_CLASS = 'MaskGitTransformer';
/**
 * Our name for the same network with options open-muse's MaskGitTransformer does not build (pooled-text AdaLN,
 * vanilla FFN). No open-muse class loads it: its MaskGiTUViT is another network (src/models/uvit/).
 */
export const EXTENDED_CLASS = 'MaskGitTransformerExtended';
/** Classes of other networks this loader cannot read, and where they load instead. */
const UNSUPPORTED_CLASSES: Record<string, string> = {
  MaskGiTUViT:
    "open-muse's U-ViT (convolutional down/up-sampling blocks, micro-conditioning), a different network: load it as MaskGiTUViT (src/models/uvit/, model.architecture: uvit; muse-sample picks it by class name)",
  MaskGiTUViT_v2:
    "open-muse's U-ViT (convolutional down/up-sampling blocks, micro-conditioning), a different network: load it as MaskGiTUViT (src/models/uvit/, model.architecture: uvit; muse-sample picks it by class name)",
};

/** The class a config truthfully is: the reference class when open-muse's MaskGitTransformer builds it. */
export function transformerClassName(cfg: MaskGitTransformerConfig): string {
  return cfg.ffn_type === 'glu' && !cfg.add_cond_embeds ? REFERENCE_CLASS : EXTENDED_CLASS;
}

/** Refuses a config.json whose `_class_name` names a network other than this one (absent: taken as the reference). */
export function checkTransformerClass(json: Record<string, unknown>, where: string): void {
  const name = json._class_name;
  if (name === undefined || name === REFERENCE_CLASS || name === EXTENDED_CLASS) return;
  const why = typeof name === 'string' && UNSUPPORTED_CLASSES[name] ? `: that is ${UNSUPPORTED_CLASSES[name]}` : '';
  throw new Error(
    `${where}: _class_name ${JSON.stringify(name)} is not supported${why}. This loader reads ${REFERENCE_CLASS} (open-muse) and ${EXTENDED_CLASS} (this project's, with pooled-text AdaLN / vanilla FFN) checkpoints`,
  );
}

/** The config.json we write (reference keys first, with the class name that truthfully loads it). */
export function transformerConfigJson(cfg: MaskGitTransformerConfig): Record<string, unknown> {
  return { _class_name: transformerClassName(cfg), _version: '0.0.1', ...cfg };
}

/** Size of the logits' last axis. */
export function outputSize(cfg: MaskGitTransformerConfig): number {
  return cfg.use_codebook_size_for_output ? cfg.codebook_size : cfg.vocab_size;
}
