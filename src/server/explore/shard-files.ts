/**
 * A sample's files read straight from its shard tar: the tar's index (src/shards/tar-index.ts: one header scan,
 * cached per shard until the tar changes, members grouped by key and extension as every tar reader does) gives each
 * file's byte range, so one sample costs one small read, not a tar walk.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { indexTarSamples, type MemberRange } from '../../shards/tar-index.ts';
import { IMAGE_EXTS } from '../../shards/tar-reader.ts';
import { shardPaths } from '../../dataset/names.ts';

interface ShardMembers {
  stamp: string;
  byKey: Map<string, Record<string, MemberRange>>;
}

export interface SampleFiles {
  image?: { bytes: Buffer; type: string };
  json?: Record<string, unknown>;
}

const IMAGE_TYPE: Record<(typeof IMAGE_EXTS)[number], string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

/** A shard tar that cannot be read: answered with this message (naming the file), logged as a 5xx. */
export class DamagedFileError extends Error {
  readonly statusCode = 500;
  /** The message is shown to the client (it names a data file, nothing internal). */
  readonly expose = true;
}

export class ShardFiles {
  private readonly members = new Map<string, ShardMembers>();
  private readonly thumbs = new Map<string, Buffer>();

  constructor(
    private readonly maxShards = 64,
    private readonly maxThumbs = 4000,
  ) {}

  private list(datasetDir: string, shard: number): ShardMembers | undefined {
    const tar = shardPaths(datasetDir, shard).tar;
    let stamp: string;
    try {
      const st = statSync(tar);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch {
      return undefined;
    }
    const id = `${datasetDir}\0${shard}`;
    const hit = this.members.get(id);
    if (hit && hit.stamp === stamp) return hit;
    let byKey: ShardMembers['byKey'];
    try {
      byKey = indexTarSamples(tar);
    } catch (err) {
      throw new DamagedFileError(
        `shard file ${path.relative(path.dirname(datasetDir), tar)} is damaged: ${(err as Error).message.replace(`${tar}: `, '')}; the dataset's other shards are browsable (refetch this one: delete its _stats.json and rerun fetch)`,
      );
    }
    const entry = { stamp, byKey };
    this.members.delete(id);
    this.members.set(id, entry);
    if (this.members.size > this.maxShards) this.members.delete(this.members.keys().next().value!);
    return entry;
  }

  /** The sample's image and JSON from its tar; undefined when the sample is not in the tar. */
  read(datasetDir: string, shard: number, key: string): SampleFiles | undefined {
    const files = this.list(datasetDir, shard)?.byKey.get(key);
    if (!files) return undefined;
    const fd = openSync(shardPaths(datasetDir, shard).tar, 'r');
    const bytes = (r: MemberRange) => {
      const buf = Buffer.alloc(r.bytes);
      readSync(fd, buf, 0, r.bytes, r.offset);
      return buf;
    };
    try {
      const out: SampleFiles = {};
      const ext = IMAGE_EXTS.find((e) => files[e]);
      if (ext) out.image = { bytes: bytes(files[ext]), type: IMAGE_TYPE[ext] };
      if (files.json) {
        try {
          out.json = JSON.parse(bytes(files.json).toString('utf8')) as Record<string, unknown>;
        } catch {
          // a damaged {key}.json: the sample is shown from the manifest row alone
        }
      }
      return out;
    } finally {
      closeSync(fd);
    }
  }

  /** A 128 px WebP thumbnail of the sample's image (cached). */
  async thumbnail(datasetDir: string, shard: number, key: string): Promise<Buffer | undefined> {
    const id = `${datasetDir}\0${key}\0${this.list(datasetDir, shard)?.stamp}`;
    const hit = this.thumbs.get(id);
    if (hit) return hit;
    const files = this.read(datasetDir, shard, key);
    if (!files?.image) return undefined;
    const t = await sharp(files.image.bytes).resize(128, 128, { fit: 'cover' }).webp({ quality: 80 }).toBuffer();
    this.thumbs.set(id, t);
    if (this.thumbs.size > this.maxThumbs) this.thumbs.delete(this.thumbs.keys().next().value!);
    return t;
  }
}
