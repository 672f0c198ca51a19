import sharp, { type Metadata } from 'sharp';
import type { ImageConfig } from '../pipeline/config-types.ts';

/**
 * Hard ceiling on decoded pixels whatever the config says (sharp's own default, 0x3FFF²): above it
 * an image is never decoded, even with `max_image_area: 0`.
 */
export const HARD_PIXEL_LIMIT = 0x3fff * 0x3fff;

/** Formats we decode. SVG (renders anything, may reference files) and PDF are refused. */
const DECODABLE = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

export interface ImageHeader {
  format: string;
  /** Size as displayed, i.e. after the EXIF orientation (5–8 swap width and height). */
  width: number;
  height: number;
}

/** Why an image was not used (header check or later). */
export interface ImageFailure {
  ok: false;
  status: 'failed' | 'filtered';
  /** decode_error | unsupported_format | pixel_limit | encode_error | min_image_size | max_aspect_ratio | max_image_area | min_file_bytes */
  reason: string;
  error: string;
  originalWidth?: number;
  originalHeight?: number;
}

export type HeaderVerdict = { ok: true; header: ImageHeader } | ImageFailure;

/** Reads only the header (no pixel decode) and applies every size filter of the config. */
export async function checkHeader(bytes: Buffer, cfg: ImageConfig): Promise<HeaderVerdict> {
  let meta: Metadata;
  try {
    // header only; the size limits are applied below, with a reason, instead of sharp's generic error
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    // Only sharp's own format check has stable wording; libvips' text varies under concurrency (see process.ts).
    const unknown = /unsupported image format/i.test(message(err));
    return {
      ok: false,
      status: 'failed',
      reason: 'decode_error',
      error: unknown ? 'not an image: unrecognised file format' : 'image header is corrupt',
    };
  }
  if (!DECODABLE.has(meta.format)) {
    return {
      ok: false,
      status: 'failed',
      reason: 'unsupported_format',
      error: `unsupported image format '${meta.format}'`,
    };
  }
  const swap = (meta.orientation ?? 1) >= 5;
  const width = swap ? meta.height : meta.width;
  const height = swap ? meta.width : meta.height;
  if (!(width > 0 && height > 0)) {
    return {
      ok: false,
      status: 'failed',
      reason: 'decode_error',
      error: `image header has no size (${width}x${height})`,
    };
  }
  const sized = { originalWidth: width, originalHeight: height };
  const area = width * height;

  if (cfg.max_image_area > 0 && area > cfg.max_image_area) {
    return {
      ok: false,
      status: 'filtered',
      reason: 'max_image_area',
      ...sized,
      error: `image area ${width}x${height} = ${area} > max_image_area ${cfg.max_image_area}`,
    };
  }
  if (area > HARD_PIXEL_LIMIT) {
    return {
      ok: false,
      status: 'failed',
      reason: 'pixel_limit',
      ...sized,
      error: `image area ${width}x${height} = ${area} exceeds the safety limit ${HARD_PIXEL_LIMIT}`,
    };
  }
  if (cfg.min_image_size > 0 && Math.min(width, height) < cfg.min_image_size) {
    return {
      ok: false,
      status: 'filtered',
      reason: 'min_image_size',
      ...sized,
      error: `smallest side ${Math.min(width, height)} (${width}x${height}) < min_image_size ${cfg.min_image_size}`,
    };
  }
  const aspect = Math.max(width, height) / Math.min(width, height);
  if (cfg.max_aspect_ratio > 0 && aspect > cfg.max_aspect_ratio) {
    return {
      ok: false,
      status: 'filtered',
      reason: 'max_aspect_ratio',
      ...sized,
      error: `aspect ratio ${aspect.toFixed(3)} (${width}x${height}) > max_aspect_ratio ${cfg.max_aspect_ratio}`,
    };
  }
  if (cfg.min_file_bytes > 0 && bytes.length < cfg.min_file_bytes) {
    return {
      ok: false,
      status: 'filtered',
      reason: 'min_file_bytes',
      ...sized,
      error: `file has ${bytes.length} bytes < min_file_bytes ${cfg.min_file_bytes}`,
    };
  }
  return { ok: true, header: { format: meta.format, width, height } };
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
