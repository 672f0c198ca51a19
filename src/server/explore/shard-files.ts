/**
 * A sample's files read straight from its shard tar: the tar's member list (header scan, cached per shard until
 * the tar changes) gives each member's byte range, so one sample costs one small read, not a tar walk. Members
 * are told apart by content: the image by its magic bytes, the JSON by parsing with the right key.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { scanTar } from '../../shards/tar-filter.ts';
import { shardPaths } from '../../dataset/names.ts';

const BLOCK = 512;

interface Range {
  offset: number;
  bytes: number;
}

interface ShardMembers {
  stamp: string;
  byKey: Map<string, Range[]>;
}

export interface SampleFiles {
  image?: { bytes: Buffer; type: string };
  json?: Record<string, unknown>;
}

function imageType(b: Buffer): string | undefined {
  if (b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length > 8 && b.toString('latin1', 1, 4) === 'PNG') return 'image/png';
  if (b.length > 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'image/webp';
  return undefined;
}

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
    const byKey = new Map<string, Range[]>();
    let members;
    try {
      members = scanTar(tar).members;
    } catch (err) {
      throw new DamagedFileError(`shard file ${path.basename(datasetDir)}/shards/${path.basename(tar)} is damaged: ${(err as Error).message.replace(`${tar}: `, '')}; the dataset's other shards are browsable (refetch this one: delete its _stats.json and rerun fetch)`);
    }
    for (const m of members) {
      if (!m.key || m.fileBytes === 0) continue;
      // A member's data is the last ceil(size/512) blocks of its range.
      const offset = m.end - Math.ceil(m.fileBytes / BLOCK) * BLOCK;
      const list = byKey.get(m.key);
      if (list) list.push({ offset, bytes: m.fileBytes });
      else byKey.set(m.key, [{ offset, bytes: m.fileBytes }]);
    }
    const entry = { stamp, byKey };
    this.members.delete(id);
    this.members.set(id, entry);
    if (this.members.size > this.maxShards) this.members.delete(this.members.keys().next().value!);
    return entry;
  }

  /** The sample's image and JSON from its tar; undefined when the sample is not in the tar. */
  read(datasetDir: string, shard: number, key: string): SampleFiles | undefined {
    const ranges = this.list(datasetDir, shard)?.byKey.get(key);
    if (!ranges) return undefined;
    const fd = openSync(shardPaths(datasetDir, shard).tar, 'r');
    try {
      const out: SampleFiles = {};
      for (const r of ranges) {
        const buf = Buffer.alloc(r.bytes);
        readSync(fd, buf, 0, r.bytes, r.offset);
        const type = imageType(buf);
        if (type) out.image = { bytes: buf, type };
        else if (buf[0] === 0x7b) {
          try {
            const j = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
            if (j.key === key) out.json = j;
          } catch {
            // a caption that starts with '{'
          }
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
