export { VQGAN, type ForwardOptions, type QuantizeResult, type Tap, type VqganSource } from './model.ts';
export {
  DEFAULT_VQGAN_CONFIG,
  configFromJson,
  configToJson,
  derived,
  vqganConfig,
  type VqganConfig,
} from './config.ts';
export { vqganParamSpecs, type ParamSpec } from './params.ts';
export { nchwToNhwc, nhwcToNchw } from './layout.ts';
