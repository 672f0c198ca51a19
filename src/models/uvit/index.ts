// open-muse's MaskGiTUViT (the aMUSEd architecture): model and config.
export { MaskGiTUViT, type UViTForwardOptions } from './model.ts';
export {
  UVIT_DEFAULTS,
  UVIT_LEGACY_KEYS,
  UVIT_OWN_KEYS,
  UVIT_REFERENCE_KEYS,
  gridSide,
  numMicroConds,
  uvitConfig,
  uvitConfigJson,
  type MaskGiTUViTConfig,
} from './config.ts';
