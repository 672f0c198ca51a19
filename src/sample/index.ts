// MaskGIT sampling: decoding, checkpoint loading, rendering, and the programmatic API behind muse-sample.
export { generate, type Conditioning, type GenerateOptions } from './generate.ts';
export { guidanceAt, temperatureAt, parseTemperature, GUIDANCE_SCHEDULES, type GuidanceSchedule } from './schedules.ts';
export { encodePrompts, classConditioning, disposeConditioning } from './conditioning.ts';
export {
  loadCheckpoint,
  readSamplingInfo,
  resolveCheckpointDir,
  type LoadedCheckpoint,
  type SamplingInfo,
} from './load.ts';
export { decodeIds, idsToPngs, makeGrid, gridLayout, rgbToPng, type GridLayout } from './images.ts';
export { sample, type SampleOptions, type SampleResult, type SampledImage } from './sample.ts';
export { sampleGridForTraining, type TrainingSampling } from './for-training.ts';
