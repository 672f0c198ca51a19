/**
 * The one image decode (src/image/to-floats.ts) that tokenize and VQGAN training share: images/s
 * of `imageToFloats` against tokenize's previous decode (no EXIF orientation step, alpha dropped before the
 * colour-space conversion), measured in the same run on the same images. 256 px JPEGs as fetch writes them, decoded
 * to the built-in VQGAN's 64 px input.
 */
import sharp from 'sharp';
import { imageToFloats } from '../src/image/to-floats.ts';
import { median, round } from './lib.ts';

/** tokenize's earlier decode, kept here only as the baseline. */
async function previousTokenizeDecode(bytes: Buffer, size: number): Promise<Float32Array> {
  const raw = await sharp(bytes)
    .removeAlpha()
    .toColourspace('srgb')
    .resize(size, size, { fit: 'cover', position: 'centre' })
    .raw()
    .toBuffer();
  const px = new Float32Array(size * size * 3);
  for (let i = 0; i < px.length; i++) px[i] = raw[i] / 255;
  return px;
}

async function images(n: number, side: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const raw = Buffer.alloc(side * side * 3);
    for (let p = 0; p < side * side; p++) raw.set([(p * 7 + i * 13) % 256, (p >> 8) % 256, (i * 31) % 256], p * 3);
    out.push(
      await sharp(raw, { raw: { width: side, height: side, channels: 3 } })
        .jpeg({ quality: 95 })
        .toBuffer(),
    );
  }
  return out;
}

export async function benchDecode(opts: { quick?: boolean; log?: (m: string) => void } = {}) {
  const n = opts.quick ? 50 : 400;
  const repeats = opts.quick ? 3 : 7;
  const size = 64;
  const imgs = await images(n, 256);
  const time = async (fn: (b: Buffer, s: number) => Promise<Float32Array>) => {
    const t0 = performance.now();
    for (const b of imgs) await fn(b, size); // one at a time, as tokenize's shard loop does
    return (performance.now() - t0) / 1000;
  };
  await time(imageToFloats); // warm-up
  const shared: number[] = [];
  const previous: number[] = [];
  for (let r = 0; r < repeats; r++) {
    // interleaved, so load on the machine hits both alike
    previous.push(n / (await time(previousTokenizeDecode)));
    shared.push(n / (await time(imageToFloats)));
    opts.log?.(
      `repeat ${r + 1}/${repeats}: shared ${round(shared[r], 1)} img/s, previous ${round(previous[r], 1)} img/s`,
    );
  }
  const s = median(shared);
  const p = median(previous);
  return {
    config: { images: n, source_px: 256, target_px: size, repeats },
    shared_images_per_s: round(s, 1),
    previous_tokenize_images_per_s: round(p, 1),
    ratio_shared_over_previous: round(s / p, 3),
    table: [
      '| decode (256 px JPEG -> 64 px floats) | images/s (median) |',
      '|---|---|',
      `| imageToFloats (tokenize + VQGAN) | ${round(s, 1)} |`,
      `| tokenize's previous decode (baseline) | ${round(p, 1)} |`,
      `| ratio | ${round(s / p, 3)} |`,
    ].join('\n'),
  };
}
