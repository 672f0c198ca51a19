// A PNG for eyeballing VQGAN training: originals on the top row, their reconstructions (tokenise + decode) below.
import * as tf from '@tensorflow/tfjs';
import { readData } from '../../runtime/read.ts';
import sharp from 'sharp';
import { writeFileAtomic } from '../../util/atomic.ts';
import type { VQGAN } from '../../models/vqgan/index.ts';

/** RGB bytes [rows*H, B*W, 3] of two rows of images [B, H, W, 3] in [0, 1] (clamped). */
export async function gridBytes(
  top: tf.Tensor4D,
  bottom: tf.Tensor4D,
): Promise<{ data: Uint8Array; width: number; height: number }> {
  const [b, h, w, c] = top.shape;
  if (c !== 3 || bottom.shape.join() !== top.shape.join()) {
    throw new Error(
      `reconstruction grid: expected two [B, H, W, 3] batches of the same shape, got [${top.shape}] and [${bottom.shape}]`,
    );
  }
  const rows = tf.tidy(() =>
    tf.concat(
      [top, bottom].map((t) => tf.concat(tf.unstack(t.clipByValue(0, 1)), 1)),
      0,
    ),
  );
  const values = await readData<'float32'>(rows, { dispose: true });
  const data = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = Math.round(values[i] * 255);
  return { data, width: b * w, height: 2 * h };
}

/** Writes the grid of `pixels` [B, H, W, 3] (in [0, 1]) and vq's reconstructions to `outPng`, atomically. */
export async function reconstructionGrid(
  vq: VQGAN,
  pixels: tf.Tensor4D,
  outPng: string,
): Promise<{ width: number; height: number }> {
  if (pixels.rank !== 4 || pixels.shape[3] !== 3)
    throw new Error(`reconstructionGrid: pixels must be [B, H, W, 3], got [${pixels.shape}]`);
  const recon = tf.tidy(() => vq.decoder(vq.quantize(vq.encoder(pixels)).quantized));
  try {
    const { data, width, height } = await gridBytes(pixels, recon);
    const png = await sharp(Buffer.from(data), { raw: { width, height, channels: 3 } })
      .png()
      .toBuffer();
    await writeFileAtomic(outPng, png);
    return { width, height };
  } finally {
    recon.dispose();
  }
}
