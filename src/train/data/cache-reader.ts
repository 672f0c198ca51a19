/**
 * Reads one shard of the token caches (format: src/dataset/cache-format.ts) into flat typed arrays that view
 * the Arrow buffers where apache-arrow allows (one record batch, the usual case): no per-row objects, no copy
 * of whole columns. Files with several record batches are concatenated (a copy).
 */
import { readFile } from 'node:fs/promises';
import { tableFromIPC, type Data, type Table, type Vector } from 'apache-arrow';
import { arrowFileDamage } from '../../dataset/cache-format.ts';

export interface TokenShard {
  keys: string[];
  /** [rows * n] token ids (Uint16 when the codebook fits, else Int32). */
  tokens: Uint16Array | Int32Array;
  n: number;
  gridH: number;
  gridW: number;
  codebookSize: number;
}

export interface TextShard {
  keys: string[];
  dim: number;
  /** float16 bits of all rows' hidden states, row r at [offsets[r] * dim, offsets[r + 1] * dim). */
  hidden: Uint16Array;
  offsets: Int32Array;
  /** [rows * pooledDim] when the encoder has a pooled output. */
  pooled?: Float32Array;
  pooledDim: number;
}

export async function readTable(file: string): Promise<Table> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(`${file} is missing: run muse-data tokenize (and muse-data verify) on the dataset`);
    throw err;
  }
  const damage = arrowFileDamage(file);
  const fix = 'run muse-data verify on the dataset; a rerun of muse-data tokenize rewrites a damaged cache file';
  if (damage) throw new Error(`${file}: ${damage}; ${fix}`);
  try {
    return tableFromIPC(bytes);
  } catch (err) {
    // apache-arrow's own message names no file
    throw new Error(`${file}: not a readable Arrow file (${(err as Error).message.split('\n')[0]}); ${fix}`);
  }
}

export function tokenShard(t: Table, file: string): TokenShard {
  const meta = t.schema.metadata;
  const gridH = Number(meta.get('grid_h'));
  const gridW = Number(meta.get('grid_w'));
  const n = gridH * gridW;
  if (!(n > 0)) throw new Error(`${file}: missing grid_h/grid_w in the schema metadata`);
  const col = column(t, 'tokens', file);
  const chunks = col.data.map((d) => (d.children[0].values as Uint16Array | Int32Array).subarray(0, d.length * n));
  return {
    keys: keysOf(t, file),
    tokens: concat(chunks),
    n,
    gridH,
    gridW,
    codebookSize: Number(meta.get('codebook_size')),
  };
}

export function textShard(t: Table, file: string): TextShard {
  const dim = Number(t.schema.metadata.get('dim'));
  if (!(dim > 0)) throw new Error(`${file}: missing dim in the schema metadata`);
  const hiddenCol = column(t, 'hidden', file);
  const hiddenParts: Uint16Array[] = [];
  const offsets = new Int32Array(t.numRows + 1);
  let row = 0;
  for (const d of hiddenCol.data) {
    const vo = d.valueOffsets as Int32Array;
    const rowsChild = d.children[0] as Data; // FixedSizeList<Float16>[dim], not sliced by the list
    const halves = rowsChild.children[0].values as Uint16Array;
    hiddenParts.push(halves.subarray(vo[0] * dim, vo[d.length] * dim));
    const base = offsets[row] - vo[0];
    for (let i = 1; i <= d.length; i++) offsets[row + i] = vo[i] + base;
    row += d.length;
  }
  const pooledDim = Number(t.schema.metadata.get('pooled_dim') ?? 0);
  const pooledCol = t.getChild('pooled');
  const pooled =
    pooledCol && pooledDim > 0
      ? concat(pooledCol.data.map((d) => (d.children[0].values as Float32Array).subarray(0, d.length * pooledDim)))
      : undefined;
  return {
    keys: keysOf(t, file),
    dim,
    hidden: concat(hiddenParts),
    offsets,
    pooled,
    pooledDim: pooled ? pooledDim : 0,
  };
}

/** Class id by key from a shard manifest `shards/{i:05d}.arrow` (column `cls`); null ids are left out. */
export async function readClassIds(manifestFile: string): Promise<Map<string, number>> {
  const t = await readTable(manifestFile);
  const keys = keysOf(t, manifestFile);
  const cls = t.getChild('cls');
  const out = new Map<string, number>();
  if (!cls) return out;
  for (let i = 0; i < keys.length; i++) {
    const c = cls.get(i) as number | null;
    if (c !== null) out.set(keys[i], c);
  }
  return out;
}

function column(t: Table, name: string, file: string): Vector {
  const col = t.getChild(name);
  if (!col) throw new Error(`${file}: no '${name}' column`);
  return col;
}

function keysOf(t: Table, file: string): string[] {
  const col = column(t, 'key', file);
  const out = new Array<string>(col.length);
  for (let i = 0; i < col.length; i++) out[i] = col.get(i) as string;
  return out;
}

function concat<T extends Uint16Array | Int32Array | Float32Array>(parts: T[]): T {
  if (parts.length === 1) return parts[0];
  const total = parts.reduce((s, p) => s + p.length, 0);
  const Ctor = (parts[0]?.constructor ?? Uint16Array) as new (n: number) => T;
  const out = new Ctor(total);
  let at = 0;
  for (const p of parts) {
    out.set(p as never, at);
    at += p.length;
  }
  return out;
}
