export { FidInception, avgPoolExcludePad } from './model.ts';
export { FID_FEATURE_DIM, FID_INPUT_SIZE, allConvs, convTensors } from './architecture.ts';
export { randomInceptionWeights, randomInceptionTensor } from './random-weights.ts';
