import { createHash } from 'node:crypto';
import sharp from 'sharp';
import type { ImageConfig } from '../pipeline/config-types.ts';
import type { EncodeFormat } from './encode.ts';
import { withEncoder } from './encode.ts';

export interface FallbackImage {
  data: Buffer;
  ext: EncodeFormat;
  width: number;
  height: number;
  /** '#rrggbb' */
  color: string;
}

/** Colour of a key's fallback image: the first three bytes of sha256(key). */
export function fallbackColor(key: string): string {
  return '#' + createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 6);
}

/**
 * Stand-in for a dead link (`dead_links: fallback`): a solid `size`×`size` image (also for resize
 * mode 'no') whose colour depends only on the key, encoded like real samples. Same key and config
 * -> byte-identical output.
 */
export async function fallbackImage(key: string, cfg: ImageConfig): Promise<FallbackImage> {
  const color = fallbackColor(key);
  const background = {
    r: parseInt(color.slice(1, 3), 16),
    g: parseInt(color.slice(3, 5), 16),
    b: parseInt(color.slice(5, 7), 16),
  };
  const size = cfg.size;
  const img = sharp({ create: { width: size, height: size, channels: 3, background } });
  const data = await withEncoder(img, cfg.encode_format, cfg.encode_quality).toBuffer();
  return { data, ext: cfg.encode_format, width: size, height: size, color };
}
