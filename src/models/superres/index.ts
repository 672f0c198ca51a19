// MUSE's super-resolution transformer (high-res tokens conditioned on low-res tokens and text).
export { SuperResTransformer, type SuperResForwardOptions } from './model.ts';
export { SUPERRES_DEFAULTS, superResConfig, superResConfigJson, type SuperResConfig } from './config.ts';
