// MaskGIT transformer (open-muse MaskGitTransformer): model, config, loss.
export { MaskGitTransformer, type ForwardOptions } from './model.ts';
export { TRANSFORMER_DEFAULTS, outputSize, transformerConfig, transformerConfigJson, type MaskGitTransformerConfig } from './config.ts';
export { IGNORE_INDEX, maskedCrossEntropy } from './loss.ts';
