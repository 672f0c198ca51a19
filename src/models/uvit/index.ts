// open-muse's MaskGiTUViT (the aMUSEd architecture): model and config.
export { MaskGiTUViT, type UViTForwardOptions } from './model.ts';
export { UVIT_DEFAULTS, gridSide, numMicroConds, uvitConfig, uvitConfigJson, type MaskGiTUViTConfig } from './config.ts';
