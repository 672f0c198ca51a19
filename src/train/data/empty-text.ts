/** The empty-caption embedding of a text cache (`text/<id>/empty.arrow`), for classifier-free guidance. */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { readTable, textShard } from './cache-reader.ts';
import { decodeHalfInto } from '../../runtime/float16.ts';
import { EMPTY_FILE } from '../../dataset/cache-format.ts';

export interface EmptyText {
  /** [length, dim] float32. */
  hidden: Float32Array;
  length: number;
  dim: number;
  pooled?: Float32Array;
}

export async function readEmptyText(textCacheDir: string): Promise<EmptyText> {
  const file = path.join(textCacheDir, EMPTY_FILE);
  if (!existsSync(file))
    throw new Error(`${file} is missing: run muse-data tokenize (it writes the empty-caption embedding)`);
  const t = textShard(await readTable(file), file);
  if (t.keys.length !== 1) throw new Error(`${file}: expected one row, found ${t.keys.length}`);
  const length = t.offsets[1] - t.offsets[0];
  const hidden = new Float32Array(length * t.dim);
  decodeHalfInto(t.hidden, t.offsets[0] * t.dim, length * t.dim, hidden, 0);
  return { hidden, length, dim: t.dim, pooled: t.pooled?.slice(0, t.pooledDim) };
}
