// Scores a generated sample-dataset picture ("a <color> <shape> on a <background> background") without any
// model: palette colours by nearest neighbour, shape class from image moments of the shape's soft mask.
//
// Colours: background = majority nearest-palette colour of the border pixels. Every other pixel whose nearest
// palette colour is not the background votes for the palette colour c whose blend line background->c passes
// closest to it (anti-aliased or blurred edges are blends of the two colours, and a blend of e.g. red on blue
// is nearest to purple, which a plain nearest-colour vote would count), weighted by how far along that line it
// is. shapeColor is null when under MIN_SHAPE_FRACTION of the pixels differ from the background.
//
// Shape: the soft mask alpha = position of each pixel on the background->shapeColor line. Moments of alpha are
// nearly unchanged by blur and downscaling (blur adds a small constant to second moments), unlike bounding-box
// fill ratios. Features, all scale-invariant:
//   spread = (mu20 + mu02) / A^2      circle 1/(2 pi) = 0.159, square 0.167, triangle 0.19, star ~0.21, cross ~0.25
//   axial  = (mu40 + mu04) / (2 mu22) circle 3, square 1.8, cross >> 3 (mass on the axes), star ~3 (5-fold symmetric)
//   skew   = mu03 / mu02^1.5          triangle (apex up) strongly negative in image coordinates; others ~0
// Thresholds come from the geometry of the shapes in src/sample-data/render.ts (see checkShapeFeatures).
import sharp from 'sharp';
import { COLORS, COLOR_NAMES, nearestColor, type ColorName, type ShapeName } from '../sample-data/palette.ts';

export interface CheckResult {
  background: ColorName;
  shapeColor: ColorName | null;
  shape: ShapeName | null;
  /** Fraction of pixels whose nearest palette colour is not the background. */
  shapeFraction: number;
}

export interface ShapeFeatures {
  area: number;
  spread: number;
  axial: number;
  skew: number;
}

export const MIN_SHAPE_FRACTION = 0.02;

export function checkImage(rgb: Uint8Array, width: number, height: number, channels: 3 | 4): CheckResult {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 3 || height < 3)
    throw new Error(`checkImage: size ${width}x${height} is too small (need at least 3x3)`);
  if (channels !== 3 && channels !== 4) throw new Error(`checkImage: channels must be 3 or 4, got ${channels}`);
  if (rgb.length !== width * height * channels)
    throw new Error(`checkImage: ${rgb.length} bytes is not ${width}x${height}x${channels}`);
  const n = width * height;
  const nearest = new Uint8Array(n);
  const px = (i: number) => [rgb[i * channels], rgb[i * channels + 1], rgb[i * channels + 2]];
  for (let i = 0; i < n; i++) nearest[i] = COLOR_NAMES.indexOf(nearestColor(px(i)));

  const border = new Array<number>(COLOR_NAMES.length).fill(0);
  for (let x = 0; x < width; x++) {
    border[nearest[x]]++;
    border[nearest[(height - 1) * width + x]]++;
  }
  for (let y = 1; y < height - 1; y++) {
    border[nearest[y * width]]++;
    border[nearest[y * width + width - 1]]++;
  }
  const bgIdx = argmax(border);
  const background = COLOR_NAMES[bgIdx];
  const bg = COLORS[background];

  const votes = new Array<number>(COLOR_NAMES.length).fill(0);
  let different = 0;
  for (let i = 0; i < n; i++) {
    if (nearest[i] === bgIdx) continue;
    different++;
    const p = px(i);
    let best = -1;
    let bestDist = Infinity;
    let bestT = 0;
    for (let c = 0; c < COLOR_NAMES.length; c++) {
      if (c === bgIdx) continue;
      const { dist, t } = toSegment(p, bg, COLORS[COLOR_NAMES[c]]);
      if (dist < bestDist) {
        bestDist = dist;
        best = c;
        bestT = t;
      }
    }
    votes[best] += bestT;
  }
  const shapeFraction = different / n;
  if (shapeFraction < MIN_SHAPE_FRACTION) return { background, shapeColor: null, shape: null, shapeFraction };
  const shapeColor = COLOR_NAMES[argmax(votes)];
  const alpha = new Float64Array(n);
  const fg = COLORS[shapeColor];
  for (let i = 0; i < n; i++) {
    const t = toSegment(px(i), bg, fg).t;
    alpha[i] = Math.min(1, Math.max(0, (t - 0.1) / 0.8)); // ignore faint noise around the background
  }
  const shape = classifyShape(shapeFeatures(alpha, width, height));
  return { background, shapeColor, shape, shapeFraction };
}

/** Decodes any image sharp reads and checks it. */
export async function checkPng(buf: Buffer): Promise<CheckResult> {
  const { data, info } = await sharp(buf)
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch((err: Error) => {
      throw new Error(`checkPng: cannot decode the image (${err.message})`);
    });
  return checkImage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), info.width, info.height, 3);
}

/** Moment features of a soft mask (row-major, `width` x `height`). */
export function shapeFeatures(alpha: ArrayLike<number>, width: number, height: number): ShapeFeatures {
  let a = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const w = alpha[y * width + x];
      a += w;
      sx += w * x;
      sy += w * y;
    }
  }
  if (a === 0) return { area: 0, spread: 0, axial: 0, skew: 0 };
  const cx = sx / a;
  const cy = sy / a;
  let m20 = 0,
    m02 = 0,
    m22 = 0,
    m40 = 0,
    m04 = 0,
    m03 = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const w = alpha[y * width + x];
      if (!w) continue;
      const dx = x - cx;
      const dy = y - cy;
      const dx2 = dx * dx;
      const dy2 = dy * dy;
      m20 += w * dx2;
      m02 += w * dy2;
      m22 += w * dx2 * dy2;
      m40 += w * dx2 * dx2;
      m04 += w * dy2 * dy2;
      m03 += w * dy2 * dy;
    }
  }
  return {
    area: a,
    spread: (m20 + m02) / (a * a),
    axial: m22 > 0 ? (m40 + m04) / (2 * m22) : Infinity,
    skew: m02 > 0 ? m03 / a / Math.pow(m02 / a, 1.5) : 0,
  };
}

/** Decision rules over the moment features (boundaries between the shapes' analytic values). */
export function classifyShape(f: ShapeFeatures): ShapeName {
  if (f.skew < -0.3) return 'triangle';
  if (f.axial > 3.6) return 'cross';
  if (f.axial < 2.4) return 'square';
  return f.spread < 0.18 ? 'circle' : 'star';
}

/** Distance from p to the segment a->b and the position t in [0, 1] of the nearest point. */
function toSegment(p: readonly number[], a: readonly number[], b: readonly number[]): { dist: number; t: number } {
  const d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  const v = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
  const len2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
  const t = Math.min(1, Math.max(0, (v[0] * d[0] + v[1] * d[1] + v[2] * d[2]) / len2));
  const e = [v[0] - t * d[0], v[1] - t * d[1], v[2] - t * d[2]];
  return { dist: e[0] * e[0] + e[1] * e[1] + e[2] * e[2], t };
}

function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}
