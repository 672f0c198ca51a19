export { createImageProcessor, type ImageResult } from './process.ts';
export { fallbackImage, fallbackColor, type FallbackImage } from './fallback.ts';
export { dhash64, dhashRaw, hammingDistance, type RawPixels } from './dhash.ts';
export { planResize, type ResizePlan } from './geometry.ts';
export { checkHeader, HARD_PIXEL_LIMIT } from './header.ts';
export { configureSharp } from './sharp-setup.ts';
