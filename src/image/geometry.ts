/** img2dataset's resize modes (pipeline `image.resize_mode`, `fetch --resize-mode`): the one list. */
export const RESIZE_MODES = ['center_crop', 'keep_ratio', 'border', 'no'] as const;
export type ResizeMode = (typeof RESIZE_MODES)[number];

/**
 * What to do to an (already EXIF-oriented) image of `width`×`height`, following img2dataset's
 * `resizer.py` exactly:
 * - `keep_ratio`: scale so the smallest side is `size`;
 * - `center_crop`: the same, then crop the centre `size`×`size`;
 * - `border`: scale so the largest side is `size`, then pad to `size`×`size` (white, as img2dataset);
 * - `no`: nothing.
 * With `onlyIfBigger`, an image whose relevant side (smallest for keep_ratio/center_crop, largest
 * for border) is not strictly larger than `size` is left completely alone — no upscale and, as in
 * img2dataset, no crop or pad either.
 */
export interface ResizePlan {
  /** Target size of the scaling step, or null when the image is not scaled. */
  resize: { width: number; height: number } | null;
  /** Crop applied after scaling (centre crop). */
  crop: { left: number; top: number; width: number; height: number } | null;
  /** White padding added after scaling (border mode). */
  pad: { top: number; bottom: number; left: number; right: number } | null;
  /** Final output size. */
  width: number;
  height: number;
}

/** Python's round(): halves go to the even neighbour (albumentations sizes are computed this way). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function scaled(width: number, height: number, scale: number): { width: number; height: number } {
  // albumentations: round(dim * scale), never below one pixel (extreme aspect ratios)
  return {
    width: Math.max(1, roundHalfEven(width * scale)),
    height: Math.max(1, roundHalfEven(height * scale)),
  };
}

export function planResize(
  width: number,
  height: number,
  size: number,
  mode: ResizeMode,
  onlyIfBigger: boolean,
): ResizePlan {
  const none: ResizePlan = { resize: null, crop: null, pad: null, width, height };
  if (mode === 'no') return none;

  if (mode === 'keep_ratio' || mode === 'center_crop') {
    const smallest = Math.min(width, height);
    if (onlyIfBigger && !(smallest > size)) return none;
    const scale = size / smallest;
    const dims = scale === 1 ? { width, height } : scaled(width, height, scale);
    const plan: ResizePlan = { ...none, resize: scale === 1 ? null : dims, width: dims.width, height: dims.height };
    if (mode === 'center_crop') {
      const cw = Math.min(size, dims.width);
      const ch = Math.min(size, dims.height);
      const left = Math.floor((dims.width - cw) / 2);
      const top = Math.floor((dims.height - ch) / 2);
      if (cw !== dims.width || ch !== dims.height) plan.crop = { left, top, width: cw, height: ch };
      plan.width = cw;
      plan.height = ch;
    }
    return plan;
  }

  // border
  const largest = Math.max(width, height);
  if (onlyIfBigger && !(largest > size)) return none;
  const scale = size / largest;
  const dims = scale === 1 ? { width, height } : scaled(width, height, scale);
  const padH = Math.max(0, size - dims.height);
  const padW = Math.max(0, size - dims.width);
  const top = Math.floor(padH / 2);
  const left = Math.floor(padW / 2);
  return {
    resize: scale === 1 ? null : dims,
    crop: null,
    pad: padH || padW ? { top, bottom: padH - top, left, right: padW - left } : null,
    width: dims.width + padW,
    height: dims.height + padH,
  };
}
