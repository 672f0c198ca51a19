import sharp from 'sharp';

/** Decoded 8-bit pixels, rows top to bottom, `channels` interleaved (1 = grey, 3 = RGB, 4 = RGBA). */
export interface RawPixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

const HASH_W = 9;
const HASH_H = 8;

/**
 * 64-bit difference hash of decoded pixels, as 16 hex chars: the image is reduced to 9×8 grey
 * cells (box average over the cell's pixels, luma = ITU-R 601: 0.299R + 0.587G + 0.114B), and bit
 * i of row r is set when cell (r, i+1) is brighter than cell (r, i). Bits are read row by row,
 * most significant first, as in the ImageHash library.
 */
export function dhashRaw(px: RawPixels): string {
  const { data, width, height, channels } = px;
  if (width < 1 || height < 1) throw new Error(`dhash: empty image ${width}x${height}`);
  if (data.length < width * height * channels)
    throw new Error('dhash: pixel buffer shorter than width*height*channels');
  const cells = new Float64Array(HASH_W * HASH_H);
  for (let cy = 0; cy < HASH_H; cy++) {
    // cell rows/cols [start, end); at least one pixel each so tiny images still hash
    const y0 = Math.floor((cy * height) / HASH_H);
    const y1 = Math.max(y0 + 1, Math.floor(((cy + 1) * height) / HASH_H));
    for (let cx = 0; cx < HASH_W; cx++) {
      const x0 = Math.floor((cx * width) / HASH_W);
      const x1 = Math.max(x0 + 1, Math.floor(((cx + 1) * width) / HASH_W));
      let sum = 0;
      for (let y = y0; y < y1; y++) {
        let i = (y * width + x0) * channels;
        for (let x = x0; x < x1; x++, i += channels) {
          sum += channels >= 3 ? 299 * data[i] + 587 * data[i + 1] + 114 * data[i + 2] : 1000 * data[i];
        }
      }
      cells[cy * HASH_W + cx] = sum / ((y1 - y0) * (x1 - x0));
    }
  }
  let hex = '';
  for (let cy = 0; cy < HASH_H; cy++) {
    let byte = 0;
    for (let cx = 0; cx < HASH_W - 1; cx++) {
      const bit = cells[cy * HASH_W + cx + 1] > cells[cy * HASH_W + cx] ? 1 : 0;
      byte = (byte << 1) | bit;
    }
    hex += byte.toString(16).padStart(2, '0');
  }
  return hex;
}

/** Largest side an encoded image is shrunk to before hashing (the hash only needs 9×8 cells). */
const PRE_SHRINK = 256;

/**
 * dHash of an encoded image (any format sharp reads) or of decoded pixels. An encoded image is
 * oriented, flattened on white and shrunk (never enlarged) so that its largest side is at most
 * 256 px, then hashed like decoded pixels; the result is within a few bits of the hash the image
 * processor records for the same picture.
 */
export async function dhash64(input: Buffer | RawPixels): Promise<string> {
  if (!Buffer.isBuffer(input)) return dhashRaw(input);
  const { data, info } = await sharp(input, { autoOrient: true, failOn: 'truncated' })
    .resize(PRE_SHRINK, PRE_SHRINK, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return dhashRaw({ data, width: info.width, height: info.height, channels: info.channels });
}

const HEX = /^[0-9a-f]*$/i;

/** Number of differing bits between two hex hashes of equal length. */
export function hammingDistance(a: string, b: string): number {
  if (a.length !== b.length) throw new Error(`hammingDistance: lengths differ (${a.length} vs ${b.length})`);
  if (!HEX.test(a) || !HEX.test(b)) throw new Error(`hammingDistance: not hex: '${a}' / '${b}'`);
  let bits = 0;
  for (let i = 0; i < a.length; i += 8) {
    const x = (parseInt(a.slice(i, i + 8), 16) ^ parseInt(b.slice(i, i + 8), 16)) >>> 0;
    bits += popcount32(x);
  }
  return bits;
}

function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
