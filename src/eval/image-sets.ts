// Image sets for evaluation: a folder of image files, or a dataset's usable samples (the rule every training stage
// reads by). Files that do not decode are reported, skipped and counted; so are images whose size differs from the
// set's first image (unless mixed sizes are allowed), since a generated set is expected to be uniform.
import { promises as fsp, existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { imageOf } from '../shards/tar-reader.ts';
import { shardPaths, shardsDir } from '../dataset/names.ts';
import { completeShards, usableRule } from '../dataset/select.ts';
import { readUsableSamples } from '../dataset/usable-samples.ts';

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
export async function decodeRgb(
  bytes: Buffer | Uint8Array,
): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(bytes, { failOn: 'error' })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion to RGB`);
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
  };
}

export interface ReadOptions {
  /** Keep at most this many images (the first in name order). */
  num?: number;
  /** Keep images of every size (each is resized for the model anyway). Default: only the first image's size. */
  allowMixedSizes?: boolean;
  /** A dataset's data root, whose index lists opt-outs not applied yet (default: the dataset's parent folder). */
  dataRoot?: string;
}

function streamSet(
  source: string,
  items: AsyncIterable<{ name: string; bytes: () => Promise<Buffer> }>,
  o: ReadOptions,
): ImageSet {
  const report: ImageSetReport = {
    source,
    skipped: [],
    counts: { considered: 0, kept: 0, not_an_image: 0, other_size: 0 },
    size: 'none',
  };
  async function* images(): AsyncGenerator<EvalImage> {
    for await (const it of items) {
      if (o.num !== undefined && report.counts.kept >= o.num) break;
      report.counts.considered++;
      let im: EvalImage;
      try {
        im = { name: it.name, ...(await decodeRgb(await it.bytes())) };
      } catch (err) {
        report.counts.not_an_image++;
        report.skipped.push({
          name: it.name,
          reason: `not a decodable image (${(err as Error).message.split('\n')[0]})`,
        });
        continue;
      }
      const size = `${im.width}x${im.height}`;
      if (report.size === 'none') report.size = size;
      else if (size !== report.size) {
        if (o.allowMixedSizes) report.size = 'mixed';
        else {
          report.counts.other_size++;
          report.skipped.push({
            name: it.name,
            reason: `size ${size}, the set's is ${report.size} (--allow-mixed-sizes keeps it)`,
          });
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
  const names = (await fsp.readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  async function* items() {
    for (const name of names) yield { name, bytes: () => fsp.readFile(path.join(dir, name)) };
  }
  return streamSet(dir, items(), o);
}

/** The rule a dataset is read with: its decided duplicates and the opt-outs pending in the index at the data root. */
function datasetRule(datasetDir: string, o: ReadOptions) {
  return usableRule(datasetDir, { dataRoot: o.dataRoot ?? path.dirname(path.resolve(datasetDir)) });
}

/**
 * A dataset's usable images (the training stages' rule, src/dataset/select.ts: complete shards, status `ok`, no
 * decided duplicate, nothing opted out), shard and key order.
 */
export async function readDatasetImages(datasetDir: string, o: ReadOptions = {}): Promise<ImageSet> {
  if (!existsSync(shardsDir(datasetDir)))
    throw new Error(`${datasetDir}: not a dataset (no ${path.basename(shardsDir(datasetDir))}/ folder)`);
  const shards = await completeShards(datasetDir);
  if (!shards.length) throw new Error(`${datasetDir}: no complete shard (fetch writes a shard's stats file last)`);
  const rule = await datasetRule(datasetDir, o);
  async function* items() {
    for await (const s of readUsableSamples(datasetDir, rule, shards)) {
      const image = imageOf(s.files);
      if (image) yield { name: s.key, bytes: async () => image };
    }
  }
  return streamSet(datasetDir, items(), o);
}

export function isDatasetFolder(dir: string): boolean {
  return existsSync(shardsDir(dir));
}

/** A folder of images, or a dataset folder (with shards/). */
export async function readImageSet(dirOrDataset: string, o: ReadOptions = {}): Promise<ImageSet> {
  return isDatasetFolder(dirOrDataset) ? readDatasetImages(dirOrDataset, o) : readImageFolder(dirOrDataset, o);
}

/**
 * What a set's images depend on, for caching its statistics: the files read (name, size, mtime) and, for a
 * dataset, the samples its rule leaves out (an opt-out added later changes the set).
 */
export async function imageSetFingerprint(dir: string, o: ReadOptions = {}): Promise<unknown> {
  const stamp = async (file: string) => {
    const st = await fsp.stat(file).catch(() => undefined);
    return st?.isFile() ? [path.basename(file), st.size, Math.round(st.mtimeMs)] : null;
  };
  if (!isDatasetFolder(dir)) {
    const names = (await fsp.readdir(dir)).sort();
    return (await Promise.all(names.map((n) => stamp(path.join(dir, n))))).filter(Boolean);
  }
  const files = [];
  for (const shard of await completeShards(dir)) {
    const p = shardPaths(dir, shard);
    files.push(await stamp(p.tar), await stamp(p.manifest), await stamp(p.stats));
  }
  return { files, excluded: [...(await datasetRule(dir, o)).exclude].sort() };
}
