/**
 * Crash-safe file output: everything is written to `<name>.tmp`, fsynced, renamed over `<name>`, and the
 * directory fsynced, so a reader (or a rerun after `kill -9`) sees either the old file or the whole new one.
 */
import { open, rename, mkdir, rm } from 'node:fs/promises';
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';

export const TMP_SUFFIX = '.tmp';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = file + TMP_SUFFIX;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    // The system's message ("ENOSPC: no space left on device, write") names no file; the old file stays, and the
    // partial temporary file goes (on a full disk it holds the space a rerun needs).
    await fh.close();
    await rm(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    throw Object.assign(
      new Error(
        `${file}: ${code === 'ENOSPC' ? 'disk full' : 'cannot write'} (${(err as Error).message}); the previous version is kept, free space and rerun`,
      ),
      { code },
    );
  }
  await fh.close();
  await rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** A stream to `<file>.tmp`; `commit()` ends it, fsyncs and renames it into place. */
export interface AtomicStream {
  stream: WriteStream;
  commit(): Promise<void>;
}

export async function createAtomicStream(file: string): Promise<AtomicStream> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = file + TMP_SUFFIX;
  const stream = createWriteStream(tmp);
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', reject);
  });
  return {
    stream,
    async commit() {
      await new Promise<void>((resolve, reject) => {
        stream.once('error', reject);
        stream.end(() => resolve());
      });
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
      await fsyncDir(path.dirname(file));
    },
  };
}
