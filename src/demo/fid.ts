// The demo's FID: generated images against real sample images, with the built-in random-weight Inception (no
// real Inception weights can be downloaded here) at its smallest input side, 75 px: 16× cheaper than 299 px, and
// the generated images are 16 px (the real ones 128 px), so little that they could match is lost. Such a
// number is a Fréchet distance between feature statistics of a fixed random convolutional network: it reacts to
// colour and layout statistics, but it is not comparable to published FIDs. What makes it readable is the
// floor beside it: the FID between two disjoint halves of the real images, measured the same way.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { computeFid, loadInception, RANDOM_INCEPTION_ID } from '../eval/fid/compute.ts';
import { readDatasetImages } from '../eval/image-sets.ts';
import { rgbToPng } from '../sample/images.ts';

/** Inception input side in the demo: the smallest the network takes (FID references use 299). */
export const DEMO_FID_SIDE = 75;

/**
 * FID of each generated folder against real images of the dataset (the first `perSet` ok samples), and the
 * real-vs-real floor (the next `perSet` samples against the first).
 */
export async function demoFid(outDir: string, datasetDir: string, generated: Record<string, string>, perSet: number) {
  const realA = path.join(outDir, 'images', 'real-a');
  const realB = path.join(outDir, 'images', 'real-b');
  for (const d of [realA, realB]) await fsp.mkdir(d, { recursive: true });
  let i = 0;
  for await (const im of (await readDatasetImages(datasetDir)).images) {
    if (i >= 2 * perSet) break;
    await fsp.writeFile(
      path.join(i < perSet ? realA : realB, `${im.name}.png`),
      await rgbToPng(im.data, im.width, im.height),
    );
    i++;
  }
  const inception = await loadInception();
  try {
    const o = { inception, resize: 'clean' as const, side: DEMO_FID_SIDE };
    const fid: Record<string, number> = {};
    for (const [name, dir] of Object.entries(generated)) fid[name] = round((await computeFid(realA, dir, o)).fid);
    fid.real_vs_real = round((await computeFid(realA, realB, o)).fid);
    return {
      fid,
      real_images: Math.min(i, perSet),
      inception: RANDOM_INCEPTION_ID,
      input_side: DEMO_FID_SIDE,
      resize: 'clean (clean-fid PIL bicubic)',
      note:
        'random-weight Inception at a reduced input side: a distance between feature statistics of a fixed random network, ' +
        'not comparable to published FIDs; compare each value with real_vs_real (two disjoint halves of the real images)',
    };
  } finally {
    inception.model.dispose();
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
