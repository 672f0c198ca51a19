/**
 * What the checker finds in the VQGAN's reconstructions of real sample images: the ceiling of the demo's
 * adherence (a transformer that predicted every token of a real image perfectly would score this, no more).
 * The report puts it next to the generated images' scores so that a missed target says which half fell short.
 */
import { tf } from '../runtime/backend.ts';
import type { VQGAN } from '../models/vqgan/index.ts';
import { readManifest } from '../dataset/manifest.ts';
import { shardPaths } from '../dataset/names.ts';
import { openPixelDataset } from '../train/vqgan/pixel-data.ts';
import { decodeIds } from '../sample/images.ts';
import { readData } from '../runtime/read.ts';
import { checkImage } from './checker.ts';
import { parseSampleCaption } from './prompts.ts';
import type { Adherence } from './score.ts';

/** Encodes and decodes the usable images of `shards` and scores the decoded images against their captions. */
export async function reconstructionAdherence(
  vq: VQGAN,
  datasetDir: string,
  shards: number[],
  dataRoot?: string,
): Promise<Adherence> {
  const captions = new Map<string, string>();
  for (const s of shards)
    for (const r of await readManifest(shardPaths(datasetDir, s).manifest))
      if (r.caption) captions.set(r.key, r.caption);
  const batch = 16;
  const data = await openPixelDataset({
    datasetDir,
    dataRoot,
    resolution: vq.config.resolution,
    batchSize: batch,
    seed: 0,
    shards,
  });
  let color = 0,
    background = 0,
    shape = 0,
    both = 0,
    n = 0;
  const seen = new Set<string>();
  for (;;) {
    const b = await data.next();
    try {
      const fresh = b.keys.map((k, i) => [k, i] as const).filter(([k]) => !seen.has(k));
      if (!fresh.length) break; // the stream came round to images already scored
      const idsT = vq.encode(b.pixels);
      const ids = Int32Array.from(await readData<'int32'>(idsT));
      idsT.dispose();
      const { rgb, width, height } = await decodeIds(vq, ids, b.keys.length);
      for (const [key, i] of fresh) {
        seen.add(key);
        const want = parseSampleCaption(captions.get(key) ?? '');
        if (!want) continue;
        const r = checkImage(rgb[i], width, height, 3);
        n++;
        color += +(r.shapeColor === want.color);
        background += +(r.background === want.background);
        shape += +(r.shape === want.shape);
        both += +(r.shapeColor === want.color && r.background === want.background);
      }
      if (b.epoch > 0) break;
    } finally {
      b.pixels.dispose();
    }
  }
  const f = (x: number) => Math.round((x / Math.max(1, n)) * 1000) / 1000;
  return {
    images: n,
    color_adherence: f(color),
    background_adherence: f(background),
    shape_adherence: f(shape),
    both_colors_adherence: f(both),
  };
}
