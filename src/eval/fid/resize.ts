// The two resizes FID references use to bring images to 299×299:
// - 'clean' (clean-fid, the default): each channel as a float32 PIL image (mode 'F'), Image.resize(BICUBIC),
//   clipped to [0, 255]. Implemented here as PIL's Resample.c does it: separable, horizontal pass first, a
//   Keys cubic with a = -0.5 whose support widens by the scale factor when downsampling (antialiasing), weights
//   normalised per output pixel, double accumulation, float32 between the passes.
// - 'pytorch-fid' (legacy): F.interpolate(mode='bilinear', align_corners=False) on [0, 1] values, no
//   antialiasing; tf.image.resizeBilinear with halfPixelCenters computes the same thing.
// sharp (libvips) is not used for either: its 'cubic' kernel is a Catmull-Rom too, but libvips shrinks large
// factors with a box prefilter first and rounds to 8 bits between steps, so its output differs from PIL's by
// up to several grey levels on detailed images (measured in test/eval-resize.test.ts).
import * as tf from '@tensorflow/tfjs';

/** FID's resizes (`muse-eval --resize`, `evaluation.resize`): the one list. */
export const FID_RESIZES = ['clean', 'pytorch-fid'] as const;
export type FidResize = (typeof FID_RESIZES)[number];

function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs {
  /** First input index per output index. */
  start: Int32Array;
  /** Number of taps per output index. */
  count: Int32Array;
  /** [out, ksize] normalised weights. */
  weights: Float64Array;
  ksize: number;
}

/** PIL's precompute_coeffs for a full-image box (in0 = 0, in1 = inSize). */
function coefficients(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubic((x + xmin - center + 0.5) * ss);
      weights[xx * ksize + x] = w;
      ww += w;
    }
    if (ww !== 0) for (let x = 0; x < xmax; x++) weights[xx * ksize + x] /= ww;
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { start, count, weights, ksize };
}

/**
 * PIL `Image.resize((outW, outH), BICUBIC)` of one float32 channel [h, w] (row-major), as float32, not clipped.
 */
export function pilBicubicChannel(src: Float32Array, w: number, h: number, outW: number, outH: number): Float32Array {
  // Horizontal pass (skipped when the width does not change, as PIL does).
  let mid = src;
  if (outW !== w) {
    const c = coefficients(w, outW);
    mid = new Float32Array(h * outW);
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let xx = 0; xx < outW; xx++) {
        let s = 0;
        const k = xx * c.ksize;
        const x0 = c.start[xx];
        for (let x = 0; x < c.count[xx]; x++) s += src[row + x0 + x] * c.weights[k + x];
        mid[y * outW + xx] = s;
      }
    }
  }
  if (outH === h) return mid === src ? Float32Array.from(src) : mid;
  const c = coefficients(h, outH);
  const out = new Float32Array(outH * outW);
  for (let yy = 0; yy < outH; yy++) {
    const k = yy * c.ksize;
    const y0 = c.start[yy];
    for (let xx = 0; xx < outW; xx++) {
      let s = 0;
      for (let y = 0; y < c.count[yy]; y++) s += mid[(y0 + y) * outW + xx] * c.weights[k + y];
      out[yy * outW + xx] = s;
    }
  }
  return out;
}

const PRECISION_BITS = 32 - 8 - 2;

/** One 8-bit pass of PIL's resampler: fixed-point weights (22 bits), rounded and clipped to 0..255. */
function pass8(
  src: Uint8Array,
  lines: number,
  inLen: number,
  outLen: number,
  horizontal: boolean,
  otherLen: number,
): Uint8Array {
  const c = coefficients(inLen, outLen);
  const k = new Float64Array(c.weights.length);
  for (let i = 0; i < k.length; i++) {
    const v = c.weights[i] * (1 << PRECISION_BITS);
    k[i] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  const out = new Uint8Array(lines * outLen);
  const half = 1 << (PRECISION_BITS - 1);
  const div = 2 ** PRECISION_BITS;
  for (let line = 0; line < lines; line++) {
    for (let o = 0; o < outLen; o++) {
      let ss = half;
      const kk = o * c.ksize;
      const s0 = c.start[o];
      for (let t = 0; t < c.count[o]; t++) {
        const v = horizontal ? src[line * inLen + s0 + t] : src[(s0 + t) * otherLen + line];
        ss += v * k[kk + t];
      }
      const r = Math.floor(ss / div);
      const val = r < 0 ? 0 : r > 255 ? 255 : r;
      if (horizontal) out[line * outLen + o] = val;
      else out[o * otherLen + line] = val;
    }
  }
  return out;
}

/**
 * PIL `Image.resize((outW, outH), BICUBIC)` of one 8-bit channel (mode 'L' / each band of 'RGB'): PIL's integer
 * path, which rounds to 8 bits after the horizontal pass and again after the vertical one.
 */
export function pilBicubicChannel8(src: Uint8Array, w: number, h: number, outW: number, outH: number): Uint8Array {
  const mid = outW === w ? src : pass8(src, h, w, outW, true, 0);
  return outH === h ? Uint8Array.from(mid) : pass8(mid, outW, h, outH, false, outW);
}

/**
 * clean-fid's resize of an interleaved RGB image (uint8 or float, values 0..255) to outW×outH: per channel PIL
 * bicubic in float, clipped to [0, 255]; returns interleaved float32 0..255.
 */
export function cleanFidResize(rgb: ArrayLike<number>, w: number, h: number, outW: number, outH: number): Float32Array {
  if (rgb.length !== w * h * 3) throw new Error(`cleanFidResize: ${rgb.length} values for ${w}×${h}×3`);
  const out = new Float32Array(outW * outH * 3);
  const chan = new Float32Array(w * h);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < w * h; i++) chan[i] = rgb[i * 3 + c];
    const r = pilBicubicChannel(chan, w, h, outW, outH);
    for (let i = 0; i < outW * outH; i++) out[i * 3 + c] = Math.min(255, Math.max(0, r[i]));
  }
  return out;
}

/**
 * One decoded RGB image (uint8, interleaved) -> [side, side, 3] float32 in [0, 1], resized the given way.
 * 'pytorch-fid' divides by 255 first and resizes bilinearly; 'clean' resizes in 0..255 then divides.
 */
export function fidInputImage(rgb: Uint8Array, w: number, h: number, mode: FidResize, side: number): tf.Tensor3D {
  if (mode === 'clean') {
    const r = w === side && h === side ? Float32Array.from(rgb) : cleanFidResize(rgb, w, h, side, side);
    for (let i = 0; i < r.length; i++) r[i] /= 255;
    return tf.tensor3d(r, [side, side, 3]);
  }
  return tf.tidy(() => {
    const x = tf.div(tf.tensor3d(Float32Array.from(rgb), [h, w, 3]), 255) as tf.Tensor3D;
    return w === side && h === side ? x : tf.image.resizeBilinear(x, [side, side], false, true);
  });
}
