// Token ids -> PNGs through the VQ decoder, and the captioned contact sheet (grid.png).
// PNG bytes depend only on the pixels (sharp writes no timestamps), so the same ids give the same bytes.
import sharp, { type OverlayOptions } from 'sharp';
import { tf } from '../runtime/backend.ts';
import type { VQGAN } from '../models/vqgan/index.ts';

/** Images decoded per VQ call (bounds decoder activation memory). */
const DECODE_CHUNK = 4;
const MASKED_GREY = 128;

/** RGB bytes [count, H, W, 3] of `count` images of `n` tokens each. Masked ids (>= codebook) are painted grey. */
export async function decodeIds(
  vq: VQGAN,
  ids: Int32Array,
  count: number,
  maskId?: number,
): Promise<{ rgb: Uint8Array[]; width: number; height: number }> {
  const n = ids.length / count;
  if (!Number.isInteger(n) || n !== vq.tokensPerImage)
    throw new Error(`decodeIds: ${ids.length} ids is not ${count} images of ${vq.tokensPerImage} tokens`);
  const side = vq.latentSize;
  const out: Uint8Array[] = [];
  let width = 0;
  let height = 0;
  for (let start = 0; start < count; start += DECODE_CHUNK) {
    const k = Math.min(DECODE_CHUNK, count - start);
    const chunk = ids.slice(start * n, (start + k) * n);
    const masked = chunk.map((v) => (maskId !== undefined && v === maskId ? 1 : 0));
    const safe = chunk.map((v, i) => (masked[i] ? 0 : v));
    const pixels = tf.tidy(() => {
      const img = vq.decodeCode(tf.tensor2d(safe, [k, n], 'int32'));
      return tf.cast(tf.round(tf.mul(tf.clipByValue(img, 0, 1), 255)), 'int32') as tf.Tensor4D;
    });
    const [, h, w, c] = pixels.shape;
    const data = (await pixels.data()) as Int32Array;
    pixels.dispose();
    width = w;
    height = h;
    const f = h / side;
    for (let b = 0; b < k; b++) {
      const rgb = new Uint8Array(h * w * 3);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const tok = Math.floor(y / f) * side + Math.floor(x / f);
          for (let ch = 0; ch < 3; ch++) {
            rgb[(y * w + x) * 3 + ch] = masked[b * n + tok]
              ? MASKED_GREY
              : data[((b * h + y) * w + x) * c + Math.min(ch, c - 1)];
          }
        }
      }
      out.push(rgb);
    }
  }
  return { rgb: out, width, height };
}

export async function rgbToPng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 9 })
    .toBuffer();
}

export async function idsToPngs(vq: VQGAN, ids: Int32Array, count: number, maskId?: number): Promise<Buffer[]> {
  const { rgb, width, height } = await decodeIds(vq, ids, count, maskId);
  return Promise.all(rgb.map((im) => rgbToPng(im, width, height)));
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** Grid geometry: cells of `cell` px (images scaled up by an integer factor to at least MIN_CELL) + a caption band. */
export const MIN_CELL = 128;
export const CAPTION_LINES = 3;
export const CAPTION_LINE_HEIGHT = 14;
export const CAPTION_HEIGHT = CAPTION_LINES * CAPTION_LINE_HEIGHT + 8;
const FONT_SIZE = 12;
/** DejaVu Sans averages about 0.6 em per character. */
const CHAR_WIDTH = FONT_SIZE * 0.6;

export interface GridLayout {
  cols: number;
  rows: number;
  scale: number;
  cellW: number;
  cellH: number;
  width: number;
  height: number;
}

export function gridLayout(count: number, imageW: number, imageH: number): GridLayout {
  const cols = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const scale = Math.max(1, Math.ceil(MIN_CELL / Math.min(imageW, imageH)));
  const cellW = imageW * scale;
  const cellH = imageH * scale + CAPTION_HEIGHT;
  return { cols, rows, scale, cellW, cellH, width: cols * cellW, height: rows * cellH };
}

/** Word-wraps to at most CAPTION_LINES lines of `maxChars`, ending in an ellipsis when cut. */
export function wrapCaption(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = '';
  const words = text.split(/\s+/).filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    let w = words[i];
    while (w.length > maxChars) {
      if (line) {
        lines.push(line);
        line = '';
      }
      lines.push(w.slice(0, maxChars));
      w = w.slice(maxChars);
    }
    const next = line ? `${line} ${w}` : w;
    if (next.length <= maxChars) line = next;
    else {
      lines.push(line);
      line = w;
    }
  }
  if (line) lines.push(line);
  if (lines.length > CAPTION_LINES) {
    const cut = lines.slice(0, CAPTION_LINES);
    cut[CAPTION_LINES - 1] = cut[CAPTION_LINES - 1].slice(0, Math.max(0, maxChars - 1)) + '…';
    return cut;
  }
  return lines;
}

/** All images (same size) in a grid, each with its caption underneath on white. */
export async function makeGrid(images: Array<{ png: Buffer; caption: string }>): Promise<Buffer> {
  if (images.length === 0) throw new Error('makeGrid: no images');
  const first = await sharp(images[0].png).metadata();
  const iw = first.width!;
  const ih = first.height!;
  const g = gridLayout(images.length, iw, ih);
  const maxChars = Math.max(4, Math.floor((g.cellW - 8) / CHAR_WIDTH));
  const layers: OverlayOptions[] = [];
  const texts: string[] = [];
  for (let i = 0; i < images.length; i++) {
    const meta = await sharp(images[i].png).metadata();
    if (meta.width !== iw || meta.height !== ih)
      throw new Error(`makeGrid: image ${i} is ${meta.width}x${meta.height}, expected ${iw}x${ih}`);
    const x = (i % g.cols) * g.cellW;
    const y = Math.floor(i / g.cols) * g.cellH;
    const scaled = await sharp(images[i].png)
      .resize(iw * g.scale, ih * g.scale, { kernel: 'nearest' })
      .png()
      .toBuffer();
    layers.push({ input: scaled, left: x, top: y });
    wrapCaption(images[i].caption, maxChars).forEach((line, k) => {
      const ty = y + ih * g.scale + 4 + (k + 1) * CAPTION_LINE_HEIGHT - 3;
      texts.push(`<text x="${x + 4}" y="${ty}">${escapeXml(line)}</text>`);
    });
  }
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${g.width}" height="${g.height}">` +
    `<g font-family="DejaVu Sans, sans-serif" font-size="${FONT_SIZE}" fill="#222">${texts.join('')}</g></svg>`;
  layers.push({ input: Buffer.from(svg), left: 0, top: 0 });
  return sharp({ create: { width: g.width, height: g.height, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(layers)
    .removeAlpha()
    .png({ compressionLevel: 9 })
    .toBuffer();
}
