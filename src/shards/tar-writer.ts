/**
 * Writes one WebDataset shard with tar-stream: per sample `{key}.{jpg|webp|png}`, `{key}.txt`, `{key}.json`
 * (and `{key}.cls`), members of a sample adjacent and in sorted extension order, as webdataset's TarWriter does.
 * Header fields are fixed (mtime, owner, mode) so the same samples always give the same bytes.
 */
import { pack as tarPack, type Pack } from 'tar-stream';
import { pipeline } from 'node:stream/promises';
import { createAtomicStream, type AtomicStream } from '../util/atomic.ts';
import { hasImage, type SampleOutcome } from './outcome.ts';
import { sampleJson } from './sample-json.ts';

const FIXED_MTIME = new Date('2020-01-01T00:00:00Z');

export class ShardTarWriter {
  private bytes = 0;
  private constructor(
    private readonly pack: Pack,
    private readonly out: AtomicStream,
    private readonly done: Promise<void>,
  ) {}

  /** The write error (a full disk: ENOSPC), named with the file; set as soon as the output stream fails. */
  private failure: Error | undefined;

  static async create(file: string): Promise<ShardTarWriter> {
    const out = await createAtomicStream(file);
    const pack = tarPack();
    const done = pipeline(pack, out.stream, { end: false });
    const w = new ShardTarWriter(pack, out, done);
    w.file = file;
    // Caught at once (an unawaited rejection would end the process with a stack trace), reported by add/finish.
    done.catch((err: Error) => w.fail(err));
    return w;
  }

  private file = '';

  /** The first write error, named with the shard file and what to do. */
  private fail(err: Error): Error {
    const code = (err as NodeJS.ErrnoException).code;
    this.failure ??= new Error(
      `${this.file}: ${code === 'ENOSPC' ? 'disk full' : 'cannot write'} (${err.message}); free space and rerun: complete shards are kept, this one is redone`,
    );
    return this.failure;
  }

  /** Adds the sample's members if it has an image; returns the bytes its members take (payload only). */
  async add(o: SampleOutcome): Promise<number> {
    if (!hasImage(o)) return 0;
    const members: Array<[string, Buffer]> = [
      [o.image.ext, o.image.data],
      ['json', Buffer.from(JSON.stringify(sampleJson(o), null, 2))],
      ['txt', Buffer.from(o.caption ?? '')],
    ];
    if (o.cls !== undefined) members.push(['cls', Buffer.from(String(o.cls))]);
    members.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    let size = 0;
    for (const [ext, data] of members) {
      await this.entry(`${o.key}.${ext}`, data);
      size += data.length;
    }
    this.bytes += size;
    return size;
  }

  /** Adds a sample's members as they are (copied from another shard of the same format), in extension order. */
  async addMembers(key: string, files: Record<string, Buffer>): Promise<number> {
    let size = 0;
    for (const ext of Object.keys(files).sort()) {
      await this.entry(`${key}.${ext}`, files[ext]);
      size += files[ext].length;
    }
    this.bytes += size;
    return size;
  }

  private entry(name: string, data: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const sink = this.pack.entry(
        { name, size: data.length, mtime: FIXED_MTIME, mode: 0o444, uname: 'muse', gname: 'muse', uid: 0, gid: 0 },
        data,
        (err) => (err ? reject(this.fail(err)) : resolve()),
      );
      // When the output fails (a full disk) tar-stream destroys the entry with the error: without a listener
      // that is an uncaught 'error' event ending the process.
      sink.on('error', (err: Error) => reject(this.fail(err)));
    });
  }

  /** Finishes the archive and renames it into place. */
  async finish(): Promise<number> {
    if (this.failure) throw this.failure;
    this.pack.finalize();
    await this.done.catch(() => undefined);
    if (this.failure) throw this.failure;
    await this.out.commit();
    return this.bytes;
  }
}
