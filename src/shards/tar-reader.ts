/**
 * Reads a WebDataset tar as samples, grouping adjacent members by key the way the Python `webdataset` library
 * does: key = member path up to the first dot of its last component, extension = the rest (lower-cased).
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { extract as tarExtract } from 'tar-stream';

export interface TarSample {
  key: string;
  files: Record<string, Buffer>;
}

/** Extensions of a sample's image member, in the order they are looked for. */
export const IMAGE_EXTS = ['jpg', 'jpeg', 'png', 'webp'] as const;

/** The image bytes of a sample's members (by extension), or undefined when it has none. */
export function imageOf(files: Record<string, Buffer>): Buffer | undefined {
  const ext = IMAGE_EXTS.find((e) => files[e]);
  return ext ? files[ext] : undefined;
}

export function splitMemberName(name: string): { key: string; ext: string } {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot < 0) return { key: name, ext: '' };
  return { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}

/** The samples of the tar `file`; with `bytes`, of those bytes already read from it (`file` then only names it in errors). */
export async function* readTarSamples(file: string, bytes?: Buffer): AsyncGenerator<TarSample> {
  const extract = tarExtract();
  const source: NodeJS.ReadableStream = bytes ? Readable.from([bytes]) : createReadStream(file);
  source.on('error', (err: Error) => extract.destroy(err));
  source.pipe(extract);
  let current: TarSample | null = null;
  try {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      if (entry.header.type !== 'file') continue;
      const { key, ext } = splitMemberName(entry.header.name);
      if (current && current.key !== key) {
        yield current;
        current = null;
      }
      current ??= { key, files: {} };
      if (ext in current.files) throw new Error(`${file}: duplicate file name ${entry.header.name} in tar`);
      current.files[ext] = Buffer.concat(chunks);
    }
  } catch (err) {
    const msg = (err as Error).message;
    if (msg.startsWith(file)) throw err;
    // tar-stream's own message ("Unexpected end of data", "Invalid tar header") names no file
    throw new Error(`${file}: damaged shard tar (${msg}); refetch the shard (delete its _stats.json and rerun fetch)`);
  }
  if (current) yield current;
}
