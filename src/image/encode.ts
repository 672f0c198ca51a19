import type { Sharp } from 'sharp';

/** The formats a fetched image is written in (pipeline `image.encode_format`, `fetch --encode-format`): the one list. */
export const ENCODE_FORMATS = ['jpg', 'webp', 'png'] as const;
export type EncodeFormat = (typeof ENCODE_FORMATS)[number];

/**
 * PNG has no quality: as in img2dataset, an `encode_quality` of 0–9 is taken as the zlib level;
 * anything else (e.g. the default 95) gets level 3, much faster than libpng's 6 for a few % size.
 */
export function pngCompressionLevel(quality: number): number {
  return Number.isInteger(quality) && quality >= 0 && quality <= 9 ? quality : 3;
}

/** Sets the output encoder on a sharp pipeline, tuned for speed (this stage bounds fetch throughput). */
export function withEncoder(img: Sharp, format: EncodeFormat, quality: number): Sharp {
  switch (format) {
    case 'jpg':
      // no Huffman optimisation, no trellis/mozjpeg tricks: ~2x cheaper for a few % bigger files
      return img.jpeg({
        quality,
        optimiseCoding: false,
        trellisQuantisation: false,
        overshootDeringing: false,
        optimiseScans: false,
        mozjpeg: false,
        progressive: false,
      });
    case 'webp':
      return img.webp({ quality, effort: 2 });
    case 'png':
      return img.png({ compressionLevel: pngCompressionLevel(quality), adaptiveFiltering: false });
  }
}
