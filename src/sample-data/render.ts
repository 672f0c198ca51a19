/**
 * Draws a catalog item (SVG -> sharp) and wraps it the way the sample server answers for the item's kind.
 * The same item always gives the same bytes (no timestamps or randomness in any encoder option).
 */
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import type { SampleItem, ImageFormat } from './catalog.ts';
import { colorHex } from './palette.ts';

export interface SampleResponse {
  status: number;
  contentType: string;
  body: Buffer;
  headers?: Record<string, string>;
}

/** The bomb is really this many pixels on a side before its header is patched. */
const BOMB_REAL_SIZE = 64;

const CONTENT_TYPES: Record<ImageFormat, string> = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' };

const f = (v: number) => Number(v.toFixed(2)).toString();

/** SVG markup of the shape, centre (cx, cy), half-extent s. */
function shapeSvg(shape: SampleItem['shape'], cx: number, cy: number, s: number, fill: string): string {
  switch (shape) {
    case 'circle':
      return `<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(s)}" fill="${fill}"/>`;
    case 'square': {
      const h = s * 0.85;
      return `<rect x="${f(cx - h)}" y="${f(cy - h)}" width="${f(2 * h)}" height="${f(2 * h)}" fill="${fill}"/>`;
    }
    case 'triangle': {
      const pts = [
        [cx, cy - s],
        [cx + s, cy + s],
        [cx - s, cy + s],
      ];
      return `<polygon points="${pts.map(([x, y]) => `${f(x)},${f(y)}`).join(' ')}" fill="${fill}"/>`;
    }
    case 'star': {
      const pts: string[] = [];
      for (let i = 0; i < 10; i++) {
        const r = i % 2 === 0 ? s : s * 0.45;
        const a = -Math.PI / 2 + (i * Math.PI) / 5;
        pts.push(`${f(cx + r * Math.cos(a))},${f(cy + r * Math.sin(a))}`);
      }
      return `<polygon points="${pts.join(' ')}" fill="${fill}"/>`;
    }
    case 'cross': {
      const t = s * 0.3; // half the arm thickness
      return (
        `<rect x="${f(cx - s)}" y="${f(cy - t)}" width="${f(2 * s)}" height="${f(2 * t)}" fill="${fill}"/>` +
        `<rect x="${f(cx - t)}" y="${f(cy - s)}" width="${f(2 * t)}" height="${f(2 * s)}" fill="${fill}"/>`
      );
    }
  }
}

/** The item's picture as an SVG of `width`x`height` (geometry scaled from the item's own size). */
export function sampleSvg(item: SampleItem, width = item.width, height = item.height): string {
  const k = width / item.width;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<rect x="0" y="0" width="${width}" height="${height}" fill="${colorHex(item.background)}"/>` +
    shapeSvg(item.shape, item.cx * k, item.cy * k, item.size * k, colorHex(item.color)) +
    `</svg>`
  );
}

async function encode(svg: string, format: ImageFormat): Promise<Buffer> {
  const img = sharp(Buffer.from(svg)).removeAlpha();
  if (format === 'jpg') return img.jpeg({ quality: 90 }).toBuffer();
  if (format === 'png') return img.png({ compressionLevel: 9 }).toBuffer();
  return img.webp({ quality: 90 }).toBuffer();
}

/** Rewrites a PNG's IHDR width/height and its CRC; the pixel data stays that of the small image. */
export function patchPngSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  if (out.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG with IHDR first');
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)) >>> 0, 29); // CRC covers chunk type + 13 data bytes
  return out;
}

/** Cuts a JPEG halfway through its entropy-coded data (after the first SOS marker). */
function truncateJpeg(jpeg: Buffer): Buffer {
  const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  if (sos < 0) throw new Error('JPEG without SOS');
  return jpeg.subarray(0, sos + Math.floor((jpeg.length - sos) / 2));
}

function text(status: number, body: string, contentType = 'text/plain; charset=utf-8'): SampleResponse {
  return { status, contentType, body: Buffer.from(body) };
}

export async function renderSampleImage(item: SampleItem): Promise<SampleResponse> {
  switch (item.kind) {
    case 'dead_404':
      return text(404, 'Not Found\n');
    case 'dead_500':
      return text(500, 'Internal Server Error\n');
    case 'html_as_jpeg':
      return text(
        200,
        `<!DOCTYPE html>\n<html><head><title>Image moved</title></head>` +
          `<body><p>The image ${item.path} has moved. Please visit our home page.</p></body></html>\n`,
        'image/jpeg',
      );
    case 'decompression_bomb': {
      const png = await encode(sampleSvg(item, BOMB_REAL_SIZE, BOMB_REAL_SIZE), 'png');
      return { status: 200, contentType: 'image/png', body: patchPngSize(png, item.width, item.height) };
    }
    case 'corrupt_jpeg':
      return { status: 200, contentType: 'image/jpeg', body: truncateJpeg(await encode(sampleSvg(item), 'jpg')) };
    default: {
      const body = await encode(sampleSvg(item), item.format);
      const headers = item.kind === 'noai_header' ? { 'X-Robots-Tag': 'noai' } : undefined;
      return { status: 200, contentType: CONTENT_TYPES[item.format], body, headers };
    }
  }
}
