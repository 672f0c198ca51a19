/**
 * Image bytes -> model input: RGB floats in [0, 1], row-major [size, size, 3]. EXIF orientation applied,
 * converted to sRGB, alpha dropped, scaled to cover the square and centre-cropped, optionally mirrored.
 * The ONE decode of a training image: tokenize (images -> VQ tokens) and the VQGAN stage (training pixels) both
 * call it, so the VQGAN is trained on exactly the floats it later tokenizes (no train/serve skew).
 */
import sharp from 'sharp';

export async function imageToFloats(
  bytes: Buffer,
  size: number,
  opts: { flip?: boolean; what?: string } = {},
): Promise<Float32Array> {
  let raw: Buffer;
  let channels: number;
  try {
    let img = sharp(bytes)
      .rotate()
      .toColourspace('srgb')
      .removeAlpha()
      .resize(size, size, { fit: 'cover', position: 'centre' });
    if (opts.flip) img = img.flop();
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    raw = data;
    channels = info.channels;
  } catch (err) {
    throw new Error(`${opts.what ?? 'image'}: cannot decode image (${(err as Error).message})`);
  }
  const out = new Float32Array(size * size * 3);
  for (let p = 0; p < size * size; p++) {
    for (let c = 0; c < 3; c++) out[p * 3 + c] = raw[p * channels + (channels >= 3 ? c : 0)] / 255;
  }
  return out;
}
