// MaskGIT transformer (open-muse MaskGitTransformer): model, config, loss.
export { MaskGitTransformer, type ForwardOptions } from './model.ts';
export {
  EXTENDED_CLASS,
  REFERENCE_CLASS,
  TRANSFORMER_DEFAULTS,
  outputSize,
  transformerClassName,
  transformerConfig,
  transformerConfigJson,
  type MaskGitTransformerConfig,
} from './config.ts';
export { IGNORE_INDEX, maskedCrossEntropy } from './loss.ts';
