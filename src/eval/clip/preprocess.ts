// CLIPImageProcessor's steps for one RGB image: resize the shortest edge to `size` (bicubic), centre-crop
// crop×crop, rescale 1/255, normalise by the CLIP mean and std. The resize is PIL's 8-bit bicubic (as OpenAI's
// CLIP and transformers' PIL backend do it); transformers 5's default torchvision backend computes the same
// antialiased bicubic in float, so its pixel values differ from PIL's by up to one grey level (measured in
// test/eval/clip.test.ts).
import { pilBicubicChannel8 } from '../fid/resize.ts';

export interface ClipImageSettings {
  /** shortest edge after resizing */
  size: number;
  /** side of the centre crop */
  crop: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** Settings from an HF preprocessor_config.json / processor_config.json object (its `image_processor` part). */
export function clipImageSettings(raw: Record<string, unknown> | undefined, imageSize: number): ClipImageSettings {
  const p = ((raw?.image_processor as Record<string, unknown> | undefined) ?? raw ?? {}) as Record<string, unknown>;
  const size = p.size as { shortest_edge?: number } | number | undefined;
  const crop = p.crop_size as { height?: number } | number | undefined;
  return {
    size: (typeof size === 'number' ? size : size?.shortest_edge) ?? imageSize,
    crop: (typeof crop === 'number' ? crop : crop?.height) ?? imageSize,
    mean: (p.image_mean as [number, number, number] | undefined) ?? OPENAI_CLIP_MEAN,
    std: (p.image_std as [number, number, number] | undefined) ?? OPENAI_CLIP_STD,
  };
}

/** Interleaved RGB uint8 [h, w, 3] -> normalised pixel values [crop, crop, 3] (NHWC row of pixel_values). */
export function clipPixels(rgb: Uint8Array, w: number, h: number, s: ClipImageSettings): Float32Array {
  const short = Math.min(w, h);
  const long = Math.max(w, h);
  const newLong = Math.trunc((s.size * long) / short);
  const [nw, nh] = w <= h ? [s.size, newLong] : [newLong, s.size];
  const resized = new Uint8Array(nw * nh * 3);
  const chan = new Uint8Array(w * h);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < w * h; i++) chan[i] = rgb[i * 3 + c];
    const r = pilBicubicChannel8(chan, w, h, nw, nh);
    for (let i = 0; i < nw * nh; i++) resized[i * 3 + c] = r[i];
  }
  if (nw < s.crop || nh < s.crop)
    throw new Error(`image ${w}×${h} resized to ${nw}×${nh} is smaller than the ${s.crop} crop`);
  const top = Math.floor((nh - s.crop) / 2);
  const left = Math.floor((nw - s.crop) / 2);
  const out = new Float32Array(s.crop * s.crop * 3);
  for (let y = 0; y < s.crop; y++) {
    for (let x = 0; x < s.crop; x++) {
      for (let c = 0; c < 3; c++) {
        const v = resized[((top + y) * nw + left + x) * 3 + c] / 255;
        out[(y * s.crop + x) * 3 + c] = (v - s.mean[c]) / s.std[c];
      }
    }
  }
  return out;
}
