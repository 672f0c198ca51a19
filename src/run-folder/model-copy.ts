/**
 * Copies a model folder into a checkpoint, so that the checkpoint names it by a relative path and a moved run
 * still loads it. Files are hard-linked where the file system allows (no bytes copied, a multi-gigabyte text
 * encoder costs nothing), else cloned or copied. Only the files a loader reads are taken.
 */
import { constants as fsConstants } from 'node:fs';
import { copyFile, link, mkdir, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { MODEL_CONFIG } from './names.ts';

/** Weights, their sharded index, the config, and the tokenizer files of a text encoder. */
const MODEL_FILE = (n: string) =>
  n === MODEL_CONFIG ||
  n === 'tokenizer.json' ||
  n === 'tokenizer_config.json' ||
  n.endsWith('.safetensors') ||
  n.endsWith('.safetensors.index.json');

export async function copyModelFolder(src: string, dest: string, what: string): Promise<void> {
  const names: string[] = [];
  try {
    for (const n of (await readdir(src)).filter(MODEL_FILE))
      if ((await stat(path.join(src, n))).isFile()) names.push(n);
  } catch (err) {
    throw new Error(`${what}: cannot read the folder ${src} (${(err as Error).message})`);
  }
  if (!names.includes(MODEL_CONFIG)) throw new Error(`${what}: ${src} has no ${MODEL_CONFIG}`);
  await mkdir(dest, { recursive: true });
  for (const n of names) {
    // A symbolic link is followed: the checkpoint holds the file itself.
    const from = await realpath(path.join(src, n));
    const to = path.join(dest, n);
    // A hard link shares the bytes; across file systems (EXDEV) or where links are refused, a copy-on-write clone or a copy.
    await link(from, to).catch(() => copyFile(from, to, fsConstants.COPYFILE_FICLONE));
  }
}
