// Image sets for evaluation: a folder of image files, or a dataset's WebDataset shards (samples with status
// 'ok'). Files that do not decode are reported, skipped and counted; so are images whose size differs from the
// set's first image (unless mixed sizes are allowed), since a generated set is expected to be uniform.
import { promises as fsp, existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { readTarSamples } from '../shards/tar-reader.ts';

export interface EvalImage {
  /** File name (folder) or sample key (dataset). */
  name: string;
  data: Uint8Array;
  width: number;
  height: number;
}

export interface Skipped {
  name: string;
  reason: string;
}

/** What a pass over a set kept and skipped (filled in while the images stream). */
export interface ImageSetReport {
  source: string;
  skipped: Skipped[];
  /** considered = kept + not_an_image + other_size */
  counts: { considered: number; kept: number; not_an_image: number; other_size: number };
  /** The kept images' size (the first decoded image's), or 'mixed' with allowMixedSizes. */
  size: string;
}

export interface ImageSet {
  report: ImageSetReport;
  /** Decoded images, streamed (a set is never held in memory whole). */
  images: AsyncGenerator<EvalImage>;
}

/** Decodes to interleaved RGB uint8 (alpha dropped, as PIL's convert('RGB') does). */
export async function decodeRgb(bytes: Buffer | Uint8Array): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(bytes, { failOn: 'error' }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion to RGB`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

export interface ReadOptions {
  /** Keep at most this many images (the first in name order). */
  num?: number;
  /** Keep images of every size (each is resized for the model anyway). Default: only the first image's size. */
  allowMixedSizes?: boolean;
}

function streamSet(source: string, items: AsyncIterable<{ name: string; bytes: () => Promise<Buffer> }>, o: ReadOptions): ImageSet {
  const report: ImageSetReport = { source, skipped: [], counts: { considered: 0, kept: 0, not_an_image: 0, other_size: 0 }, size: 'none' };
  async function* images(): AsyncGenerator<EvalImage> {
    for await (const it of items) {
      if (o.num !== undefined && report.counts.kept >= o.num) break;
      report.counts.considered++;
      let im: EvalImage;
      try {
        im = { name: it.name, ...(await decodeRgb(await it.bytes())) };
      } catch (err) {
        report.counts.not_an_image++;
        report.skipped.push({ name: it.name, reason: `not a decodable image (${(err as Error).message.split('\n')[0]})` });
        continue;
      }
      const size = `${im.width}x${im.height}`;
      if (report.size === 'none') report.size = size;
      else if (size !== report.size) {
        if (o.allowMixedSizes) report.size = 'mixed';
        else {
          report.counts.other_size++;
          report.skipped.push({ name: it.name, reason: `size ${size}, the set's is ${report.size} (--allow-mixed-sizes keeps it)` });
          continue;
        }
      }
      report.counts.kept++;
      yield im;
    }
  }
  return { report, images: images() };
}

/** Every file of a folder (not recursive, hidden files left out), in name order. */
export async function readImageFolder(dir: string, o: ReadOptions = {}): Promise<ImageSet> {
  const stat = await fsp.stat(dir).catch(() => undefined);
  if (!stat?.isDirectory()) throw new Error(`${dir}: not a folder of images`);
  const names = (await fsp.readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name).sort();
  async function* items() {
    for (const name of names) yield { name, bytes: () => fsp.readFile(path.join(dir, name)) };
  }
  return streamSet(dir, items(), o);
}

/** The 'ok' samples of a dataset's shards (shards/*.tar), key order. */
export async function readDatasetImages(datasetDir: string, o: ReadOptions = {}): Promise<ImageSet> {
  const shardDir = path.join(datasetDir, 'shards');
  if (!existsSync(shardDir)) throw new Error(`${datasetDir}: not a dataset (no shards/ folder)`);
  const tars = (await fsp.readdir(shardDir)).filter((f) => f.endsWith('.tar')).sort();
  if (!tars.length) throw new Error(`${datasetDir}: no shards/*.tar`);
  async function* items() {
    for (const tar of tars) {
      for await (const s of readTarSamples(path.join(shardDir, tar))) {
        const meta = s.files.json ? (JSON.parse(s.files.json.toString('utf8')) as { status?: string }) : {};
        if (meta.status && meta.status !== 'ok') continue;
        const ext = ['jpg', 'jpeg', 'png', 'webp'].find((e) => s.files[e]);
        if (!ext) continue;
        yield { name: s.key, bytes: async () => s.files[ext] };
      }
    }
  }
  return streamSet(datasetDir, items(), o);
}

/** A folder of images, or a dataset folder (with shards/). */
export async function readImageSet(dirOrDataset: string, o: ReadOptions = {}): Promise<ImageSet> {
  return existsSync(path.join(dirOrDataset, 'shards')) ? readDatasetImages(dirOrDataset, o) : readImageFolder(dirOrDataset, o);
}
