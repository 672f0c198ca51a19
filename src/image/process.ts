import { createHash } from 'node:crypto';
import sharp, { type OutputInfo } from 'sharp';
import type { ImageConfig } from '../pipeline/config-types.ts';
import type { EncodeFormat } from './encode.ts';
import { dhashRaw } from './dhash.ts';
import { withEncoder } from './encode.ts';
import { planResize } from './geometry.ts';
import { checkHeader, HARD_PIXEL_LIMIT, message, type ImageFailure } from './header.ts';

export type ImageResult =
  | {
      ok: true;
      data: Buffer;
      ext: EncodeFormat;
      width: number;
      height: number;
      originalWidth: number;
      originalHeight: number;
      /** Hex SHA-256 of the downloaded bytes (not of the re-encoded output). */
      sha256: string;
      /** 64-bit dHash of the output pixels, 16 hex chars. */
      phash: string;
    }
  | ImageFailure;

const WHITE = { r: 255, g: 255, b: 255 };

/**
 * Returns the per-image transform of a pipeline: header check and size filters (no decode), then a
 * single decode (oriented, sRGB, alpha on white, resized per `resize_mode`) to raw pixels, from
 * which both the dHash and the encoded output are made. Never throws: every problem is a result.
 */
export function createImageProcessor(cfg: ImageConfig): (bytes: Buffer) => Promise<ImageResult> {
  const pixelLimit = cfg.max_image_area > 0 ? Math.min(cfg.max_image_area, HARD_PIXEL_LIMIT) : HARD_PIXEL_LIMIT;

  return async function processImage(bytes: Buffer): Promise<ImageResult> {
    const head = await checkHeader(bytes, cfg);
    if (!head.ok) return head;
    const { width: originalWidth, height: originalHeight } = head.header;
    const sized = { originalWidth, originalHeight };
    const plan = planResize(originalWidth, originalHeight, cfg.size, cfg.resize_mode, cfg.resize_only_if_bigger);

    let raw: { data: Buffer; info: OutputInfo };
    try {
      // 'truncated': a cut-off body is an error, not a half-grey picture; minor libjpeg warnings
      // (extraneous bytes etc., common on the web) are tolerated like cv2/PIL do.
      let img = sharp(bytes, {
        failOn: 'truncated',
        limitInputPixels: pixelLimit,
        autoOrient: true,
        sequentialRead: true,
      });
      // resize before crop/pad so JPEG shrink-on-load applies
      if (plan.resize) img = img.resize(plan.resize.width, plan.resize.height, { fit: 'fill' });
      if (plan.crop) img = img.extract(plan.crop);
      img = img.flatten({ background: WHITE }).toColourspace('srgb').removeAlpha();
      if (plan.pad) img = img.extend({ ...plan.pad, background: WHITE }); // img2dataset pads white
      raw = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    } catch {
      // libvips keeps its error text in a process-wide buffer that concurrent operations clear or mix
      // ("Unknown error" under load), so its wording is not recorded: the manifest must be reproducible.
      const what = `${head.header.format} ${originalWidth}x${originalHeight}`;
      return {
        ok: false,
        status: 'failed',
        reason: 'decode_error',
        error: `${what}: image data is corrupt or truncated`,
        ...sized,
      };
    }

    const { width, height, channels } = raw.info;
    if (width !== plan.width || height !== plan.height || channels !== 3) {
      return {
        ok: false,
        status: 'failed',
        reason: 'decode_error',
        ...sized,
        error: `unexpected decode result ${width}x${height}x${channels}, planned ${plan.width}x${plan.height}x3`,
      };
    }
    const phash = dhashRaw({ data: raw.data, width, height, channels });

    let data: Buffer;
    try {
      const fromRaw = sharp(raw.data, { raw: { width, height, channels: 3 } });
      data = await withEncoder(fromRaw, cfg.encode_format, cfg.encode_quality).toBuffer();
    } catch (err) {
      return { ok: false, status: 'failed', reason: 'encode_error', error: `encode failed: ${message(err)}`, ...sized };
    }

    const sha256 = createHash('sha256').update(bytes).digest('hex');
    return { ok: true, data, ext: cfg.encode_format, width, height, ...sized, sha256, phash };
  };
}
