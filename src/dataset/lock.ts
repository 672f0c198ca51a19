/**
 * `<dataset>/rewrite.lock`: one command at a time rewrites a dataset's shards and caches. Two rewriters at once
 * would write the same `<file>.tmp` (one dies on the other's rename, a cache file can be left empty).
 *
 * Exclusive (take the lock; a second one waits for the first, saying who holds it): `optout apply`,
 * `dedup --apply`, `tokenize` (it writes the caches the other two rewrite). Everything else reads a dataset
 * without the lock: a reader sees whole files only (every write is atomic), and `fetch` writes only shards that
 * are not complete yet, which the rewriters leave alone.
 *
 * The file holds the holder's pid, host, command and start time. A lock whose holder is gone (same host, no such
 * process: `kill -9`, a crash) is taken over; one held on another host cannot be checked from here, so the wait
 * message says which file to delete if that process is gone.
 */
import { randomUUID } from 'node:crypto';
import { link, open, readFile, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'rewrite.lock';

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  since: string;
  token: string;
}

export interface LockOptions {
  /** Called once when the lock is held by another process, with who holds it. */
  onWait?: (message: string) => void;
  pollMs?: number;
}

/** A lock file still empty after this long was left by a process killed while creating it. */
const EMPTY_STALE_MS = 10_000;

export function lockPath(datasetDir: string): string {
  return path.join(datasetDir, LOCK_FILE);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(file: string): Promise<LockHolder | null | 'gone'> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const h = JSON.parse(text) as LockHolder;
    return typeof h.pid === 'number' && typeof h.token === 'string' ? h : null;
  } catch {
    return null; // being written, or damaged
  }
}

export function describeHolder(h: LockHolder): string {
  return `\`${h.command}\` (pid ${h.pid} on ${h.host}, since ${h.since})`;
}

/** Takes the dataset's lock, waiting while another live process holds it; returns the release function. */
export async function lockDataset(
  datasetDir: string,
  command: string,
  opts: LockOptions = {},
): Promise<() => Promise<void>> {
  const file = lockPath(datasetDir);
  const me: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    command,
    since: new Date().toISOString(),
    token: randomUUID(),
  };
  let told = false;
  for (;;) {
    try {
      const fh = await open(file, 'wx');
      try {
        await fh.writeFile(JSON.stringify(me) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      return async () => {
        const h = await readHolder(file);
        if (h && h !== 'gone' && h.token === me.token) await rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`cannot create the lock ${file}: ${(err as Error).message}`);
      }
    }
    const h = await readHolder(file);
    if (h === 'gone') continue;
    const stale =
      h === null
        ? Date.now() - ((await stat(file).catch(() => null))?.mtimeMs ?? Date.now()) > EMPTY_STALE_MS
        : h.host === me.host && !alive(h.pid);
    if (stale) {
      // Move it aside first, then check it was the stale one (another waiter may have taken over meanwhile).
      const aside = `${file}.${me.token}`;
      try {
        await rename(file, aside);
      } catch {
        continue;
      }
      const moved = await readHolder(aside);
      // A live holder's lock moved by mistake goes back (link: never over a lock created meanwhile).
      if (moved !== 'gone' && moved !== null && h !== null && moved.token !== h.token)
        await link(aside, file).catch(() => undefined);
      await rm(aside, { force: true });
      continue;
    }
    if (!told && h) {
      told = true;
      const remote = h.host !== me.host ? `; if that process is gone, delete ${file}` : '';
      opts.onWait?.(`${datasetDir} is being rewritten by ${describeHolder(h)}: waiting for it to finish${remote}`);
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 200));
  }
}

/** Runs `fn` holding the dataset's lock. */
export async function withDatasetLock<T>(
  datasetDir: string,
  command: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const release = await lockDataset(datasetDir, command, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}
