// Text encoders (T5, CLIP, built-in byt5-tiny) and their tokenizers.
export {
  BYT5_TINY_CONFIG,
  BYT5_TINY_ID,
  absoluteTextEncoderSpec,
  byt5Tiny,
  loadTextEncoder,
  mapTextEncoderFolders,
  parseTextEncoderSpec,
  textEncoderSpecs,
  type TextEncoderSpec,
  type EncodedText,
  type TextEncoder,
  type TextEncoderOptions,
} from './encoders.ts';
export { combineTextEncoders, loadTextEncoders } from './combined.ts';
export { T5Encoder, T5_DEFAULTS, relativePositionBucket, t5Config, type T5Config, type T5Output } from './t5.ts';
export {
  CLIP_TEXT_DEFAULTS,
  ClipTextEncoder,
  clipTextConfig,
  eosPositions,
  type ClipTextConfig,
  type ClipTextOutput,
} from './clip.ts';
export {
  ByteTokenizer,
  HfTokenizer,
  TextTokenizer,
  loadClipTokenizer,
  loadT5Tokenizer,
  type Padding,
  type TokenizedBatch,
  type TokenizeOptions,
} from './tokenizer.ts';
