// MaskGIT VQGAN configuration, mirroring open-muse's `MaskGitVQGAN` constructor (muse/modeling_maskgit_vqgan.py).
// The JSON form uses open-muse's snake_case keys so its config.json files load unchanged.

export interface VqganConfig {
  resolution: number;
  numChannels: number;
  hiddenChannels: number;
  channelMult: number[];
  numResBlocks: number;
  zChannels: number;
  numEmbeddings: number;
  /** Codebook vector size; must equal zChannels (there is no quant_conv). */
  quantizedEmbedDim: number;
  dropout: number;
  commitmentCost: number;
  /**
   * GroupNorm groups (diffusers' `norm_num_groups`; open-muse hard-codes 32). Every level's channel count must be a
   * multiple of it. Saved in config.json only when it is not 32, so reference configs round-trip unchanged.
   */
  normNumGroups: number;
  /** Accepted and saved for compatibility; unused by the architecture (no attention blocks). */
  attnResolutions: number[];
  /** Accepted and saved for compatibility; unused (resampling always uses avg-pool / nearest + conv). */
  resampleWithConv: boolean;
}

/** Reference defaults: the f16 ImageNet tokenizer (openMUSE/maskgit-vqgan-imagenet-f16-256). */
export const DEFAULT_VQGAN_CONFIG: Readonly<VqganConfig> = Object.freeze({
  resolution: 256,
  numChannels: 3,
  hiddenChannels: 128,
  channelMult: [1, 1, 2, 2, 4],
  numResBlocks: 2,
  zChannels: 256,
  numEmbeddings: 1024,
  quantizedEmbedDim: 256,
  dropout: 0,
  commitmentCost: 0.25,
  normNumGroups: 32,
  attnResolutions: [16],
  resampleWithConv: true,
});

export function vqganConfig(overrides: Partial<VqganConfig> = {}): VqganConfig {
  const config = { ...DEFAULT_VQGAN_CONFIG, channelMult: [...DEFAULT_VQGAN_CONFIG.channelMult], ...overrides };
  validate(config);
  return config;
}

/** Levels, downsampling factor and latent grid side (derived as in open-muse). */
export function derived(config: VqganConfig) {
  const numResolutions = config.channelMult.length;
  const reductionFactor = 2 ** (numResolutions - 1);
  return { numResolutions, reductionFactor, latentSize: Math.floor(config.resolution / reductionFactor) };
}

function validate(c: VqganConfig): void {
  const fail = (why: string) => {
    throw new Error(`invalid VQGAN config: ${why}`);
  };
  if (c.channelMult.length < 1) fail('channel_mult is empty');
  if (c.quantizedEmbedDim !== c.zChannels)
    fail(`quantized_embed_dim ${c.quantizedEmbedDim} must equal z_channels ${c.zChannels}`);
  if (!Number.isInteger(c.normNumGroups) || c.normNumGroups < 1)
    fail(`norm_num_groups must be a positive integer, got ${c.normNumGroups}`);
  for (const m of c.channelMult)
    if ((c.hiddenChannels * m) % c.normNumGroups !== 0)
      fail(`hidden_channels*${m} is not a multiple of norm_num_groups ${c.normNumGroups} (GroupNorm groups)`);
  if (c.numResBlocks < 1) fail('num_res_blocks must be >= 1');
}

const KEYS: Array<[keyof VqganConfig, string]> = [
  ['resolution', 'resolution'],
  ['numChannels', 'num_channels'],
  ['hiddenChannels', 'hidden_channels'],
  ['channelMult', 'channel_mult'],
  ['numResBlocks', 'num_res_blocks'],
  ['attnResolutions', 'attn_resolutions'],
  ['zChannels', 'z_channels'],
  ['numEmbeddings', 'num_embeddings'],
  ['quantizedEmbedDim', 'quantized_embed_dim'],
  ['dropout', 'dropout'],
  ['resampleWithConv', 'resample_with_conv'],
  ['commitmentCost', 'commitment_cost'],
  ['normNumGroups', 'norm_num_groups'],
];

/** The config.json keys (open-muse's snake_case) with their reference defaults: the schema of `model.vqgan`. */
export function vqganJsonDefaults(): Record<string, unknown> {
  return Object.fromEntries(KEYS.map(([key, jsonKey]) => [jsonKey, DEFAULT_VQGAN_CONFIG[key]]));
}

/** Reads an open-muse config.json object (missing keys take the reference defaults). */
export function configFromJson(json: Record<string, unknown>): VqganConfig {
  if (json._class_name !== undefined && json._class_name !== 'MaskGitVQGAN') {
    throw new Error(`config is for ${String(json._class_name)}, not MaskGitVQGAN`);
  }
  const overrides: Partial<Record<keyof VqganConfig, unknown>> = {};
  for (const [key, jsonKey] of KEYS) if (json[jsonKey] !== undefined) overrides[key] = json[jsonKey];
  if (typeof overrides.attnResolutions === 'number') overrides.attnResolutions = [overrides.attnResolutions];
  return vqganConfig(overrides as Partial<VqganConfig>);
}

export function configToJson(config: VqganConfig): Record<string, unknown> {
  const json: Record<string, unknown> = { _class_name: 'MaskGitVQGAN', _version: '0.0.1' };
  for (const [key, jsonKey] of KEYS)
    if (key !== 'normNumGroups' || config.normNumGroups !== DEFAULT_VQGAN_CONFIG.normNumGroups)
      json[jsonKey] = config[key];
  return json;
}
