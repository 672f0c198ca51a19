/**
 * Token caches: the contract between `muse-data tokenize` (writer) and the training loader (reader).
 *
 *   <dataset>/tokens/<vq-id>/{i:05d}.arrow    key: Utf8, tokens: FixedSizeList<Uint16|Int32>[N]
 *                                             metadata grid_h, grid_w, codebook_size, vq_id
 *   <dataset>/text/<encoder-id>/{i:05d}.arrow key: Utf8, ids: List<Int32>, length: Int32,
 *                                             hidden: List<FixedSizeList<Float16>[D]>, pooled?: FixedSizeList<Float32>[P]
 *                                             metadata dim, encoder_id, pooled_dim
 *   <dataset>/text/<encoder-id>/empty.arrow   same schema, one row with key "" (the empty caption, for CFG)
 *   <dataset>/{tokens,text}/<id>/manifest.json  CacheManifest
 * Arrow IPC file format, one row per sample in shard key order; readable by pyarrow and `tableFromIPC`.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  Field,
  FixedSizeList,
  Float16,
  Float32,
  Int32,
  List,
  RecordBatch,
  Schema,
  Struct,
  Table,
  Uint16,
  Utf8,
  makeData,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  type Data,
} from 'apache-arrow';
import { shardName } from './names.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export type CacheKind = 'vq' | 'text';
export const CACHE_DIR: Record<CacheKind, string> = { vq: 'tokens', text: 'text' };
export const EMPTY_FILE = 'empty.arrow';
export const MANIFEST_FILE = 'manifest.json';

export function cacheDir(datasetDir: string, kind: CacheKind, id: string): string {
  return path.join(datasetDir, CACHE_DIR[kind], id);
}
export function cacheShardPath(datasetDir: string, kind: CacheKind, id: string, shard: number): string {
  return path.join(cacheDir(datasetDir, kind, id), `${shardName(shard)}.arrow`);
}

/**
 * Why a cache file cannot be a whole Arrow IPC file, or null when it may be: it is missing, empty (a write cut
 * short or clobbered), or lacks the `ARROW1` magic at either end (truncated, or not Arrow). Reads 12 bytes: cheap
 * enough for tokenize to check every file it would skip.
 */
export function arrowFileDamage(file: string): string | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `unreadable (${(err as Error).message})`;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return '0 bytes (a write was cut short)';
    const head = Buffer.alloc(6);
    const tail = Buffer.alloc(6);
    if (size < 12 || readSync(fd, head, 0, 6, 0) < 6 || readSync(fd, tail, 0, 6, size - 6) < 6)
      return `${size} bytes, too short for an Arrow file`;
    if (head.toString('latin1') !== 'ARROW1') return 'not an Arrow file (no ARROW1 magic at the start)';
    if (tail.toString('latin1') !== 'ARROW1') return 'truncated (no ARROW1 magic at the end)';
    return null;
  } finally {
    closeSync(fd);
  }
}

// ---- manifest.json ----

export interface CacheManifest {
  kind: CacheKind;
  id: string;
  model: { name: string; config: Record<string, unknown> };
  weights_sha256: string;
  created: string;
  /** Whether `fallback` samples were cached too (tokenize --include-fallbacks); absent = false. */
  include_fallbacks?: boolean;
  /** By shard name ("00000"): rows in the cache file and the file's sha256. */
  shards: Record<string, { samples: number; sha256_of_file: string }>;
}

export async function readCacheManifest(dir: string): Promise<CacheManifest | null> {
  const file = path.join(dir, MANIFEST_FILE);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(await readFile(file, 'utf8')) as CacheManifest;
  } catch (err) {
    throw new Error(`${file}: unreadable cache manifest (${(err as Error).message})`);
  }
}

export async function writeCacheManifest(dir: string, m: CacheManifest): Promise<void> {
  await writeFileAtomic(path.join(dir, MANIFEST_FILE), JSON.stringify(m, null, 2) + '\n');
}

// ---- image tokens ----

export interface TokenRows {
  keys: string[];
  /** Row-major [rows, gridH*gridW] token ids. */
  tokens: Int32Array;
  gridH: number;
  gridW: number;
  codebookSize: number;
  vqId: string;
}

/** Uint16 storage when every id fits, else Int32. */
export function tokenValueType(codebookSize: number): Uint16 | Int32 {
  return codebookSize <= 65536 ? new Uint16() : new Int32();
}

export function tokenTable(r: TokenRows): Table {
  const n = r.gridH * r.gridW;
  const rows = r.keys.length;
  if (r.tokens.length !== rows * n) throw new Error(`tokens: ${r.tokens.length} values for ${rows} rows of ${n}`);
  const valueType = tokenValueType(r.codebookSize);
  const values = valueType instanceof Uint16 ? Uint16Array.from(r.tokens) : Int32Array.from(r.tokens);
  const child = makeData({ type: valueType, length: rows * n, data: values } as never) as never;
  const tokens = makeData({
    type: new FixedSizeList(n, new Field('item', valueType, false)),
    length: rows,
    nullCount: 0,
    child,
  });
  return buildTable(
    { key: utf8(r.keys), tokens },
    {
      grid_h: String(r.gridH),
      grid_w: String(r.gridW),
      codebook_size: String(r.codebookSize),
      vq_id: r.vqId,
    },
  );
}

/** Token ids of one decoded token table, as Int32 [rows, N]. */
export function readTokenTable(t: Table): {
  keys: string[];
  tokens: Int32Array;
  gridH: number;
  gridW: number;
  codebookSize: number;
  vqId: string;
} {
  const meta = t.schema.metadata;
  const gridH = Number(meta.get('grid_h'));
  const gridW = Number(meta.get('grid_w'));
  const col = t.getChild('tokens');
  if (!col) throw new Error('token cache has no tokens column');
  const n = gridH * gridW;
  const tokens = new Int32Array(t.numRows * n);
  let at = 0;
  for (const d of col.data) {
    const child = d.children[0];
    if (d.offset === 0 && child.offset === 0)
      tokens.set((child.values as Uint16Array | Int32Array).subarray(0, d.length * n), at);
    else for (let i = 0; i < d.length; i++) tokens.set(col.get(at / n + i)!.toArray() as Int32Array, at + i * n);
    at += d.length * n;
  }
  return {
    keys: keysOf(t),
    tokens,
    gridH,
    gridW,
    codebookSize: Number(meta.get('codebook_size')),
    vqId: meta.get('vq_id') ?? '',
  };
}

// ---- text states ----

export interface TextRows {
  keys: string[];
  /** Token ids of each text at its real length. */
  ids: Int32Array[];
  /** Hidden states of each text: [length_i * dim] float16 bits. */
  hidden: Uint16Array[];
  /** Row-major [rows, pooledDim] when the encoder has a pooled output. */
  pooled?: Float32Array;
  dim: number;
  pooledDim?: number;
  encoderId: string;
}

export function textTable(r: TextRows): Table {
  const rows = r.keys.length;
  const lengths = r.ids.map((x) => x.length);
  const offsets = new Int32Array(rows + 1);
  for (let i = 0; i < rows; i++) offsets[i + 1] = offsets[i] + lengths[i];
  const total = offsets[rows];

  const idValues = new Int32Array(total);
  const hiddenValues = new Uint16Array(total * r.dim);
  for (let i = 0; i < rows; i++) {
    idValues.set(r.ids[i], offsets[i]);
    if (r.hidden[i].length !== lengths[i] * r.dim)
      throw new Error(
        `text row ${r.keys[i]}: hidden has ${r.hidden[i].length} values, expected ${lengths[i]}x${r.dim}`,
      );
    hiddenValues.set(r.hidden[i], offsets[i] * r.dim);
  }
  const idsChild = makeData({ type: new Int32(), length: total, data: idValues });
  const ids = makeData({
    type: new List(new Field('item', new Int32(), false)),
    length: rows,
    nullCount: 0,
    valueOffsets: offsets,
    child: idsChild,
  });
  const halfChild = makeData({ type: new Float16(), length: total * r.dim, data: hiddenValues });
  const rowType = new FixedSizeList(r.dim, new Field('item', new Float16(), false));
  const rowData = makeData({ type: rowType, length: total, nullCount: 0, child: halfChild });
  const hidden = makeData({
    type: new List(new Field('item', rowType, false)),
    length: rows,
    nullCount: 0,
    valueOffsets: offsets,
    child: rowData,
  });
  const length = makeData({ type: new Int32(), length: rows, data: Int32Array.from(lengths) });
  const cols: Record<string, Data> = { key: utf8(r.keys), ids, length, hidden };
  if (r.pooledDim) {
    if (!r.pooled || r.pooled.length !== rows * r.pooledDim)
      throw new Error('text cache: pooled missing or of the wrong size');
    const child = makeData({ type: new Float32(), length: rows * r.pooledDim, data: r.pooled });
    cols.pooled = makeData({
      type: new FixedSizeList(r.pooledDim, new Field('item', new Float32(), false)),
      length: rows,
      nullCount: 0,
      child,
    });
  }
  return buildTable(cols, { dim: String(r.dim), encoder_id: r.encoderId, pooled_dim: String(r.pooledDim ?? 0) });
}

export interface TextRow {
  key: string;
  ids: Int32Array;
  length: number;
  /** [length * dim] float16 bits. */
  hidden: Uint16Array;
  pooled?: Float32Array;
}

/** Row `i` of a text table (copies; fine for tests and verify, a loader may read the buffers directly). */
export function readTextRow(t: Table, i: number): TextRow {
  const dim = Number(t.schema.metadata.get('dim'));
  const row = t.get(i)!;
  const idsVec = row.ids as { toArray(): Int32Array };
  const hiddenVec = row.hidden as { length: number; get(j: number): { toArray(): Uint16Array } };
  const hidden = new Uint16Array(hiddenVec.length * dim);
  for (let j = 0; j < hiddenVec.length; j++) hidden.set(hiddenVec.get(j).toArray(), j * dim);
  const pooled = row.pooled ? Float32Array.from((row.pooled as { toArray(): Float32Array }).toArray()) : undefined;
  return {
    key: row.key as string,
    ids: Int32Array.from(idsVec.toArray()),
    length: row.length as number,
    hidden,
    pooled,
  };
}

// ---- shared ----

export function keysOf(t: Table): string[] {
  const col = t.getChild('key');
  if (!col) throw new Error('cache file has no key column');
  const out: string[] = [];
  for (let i = 0; i < col.length; i++) out.push(col.get(i) as string);
  return out;
}

export function tableBytes(t: Table): Uint8Array {
  return tableToIPC(t, 'file');
}

export async function readCacheTable(file: string): Promise<Table> {
  return tableFromIPC(await readFile(file));
}

function utf8(values: string[]) {
  return vectorFromArray(values, new Utf8()).data[0];
}

function buildTable(cols: Record<string, Data>, metadata: Record<string, string>): Table {
  const fields = Object.entries(cols).map(([name, d]) => new Field(name, d.type, false));
  const schema = new Schema(fields, new Map(Object.entries(metadata)));
  const length = Object.values(cols)[0].length;
  const struct = makeData({ type: new Struct(fields), length, nullCount: 0, children: Object.values(cols) });
  return new Table(schema, [new RecordBatch(schema, struct)]);
}

/**
 * After a shard's cache files were rewritten in place (opt-out / dedup apply drop rows), brings each cache
 * manifest's entry for that shard (rows, sha256) up to date. Idempotent: unchanged entries are not rewritten.
 */
export async function refreshCacheManifests(datasetDir: string, shard: number): Promise<number> {
  const name = shardName(shard);
  let updated = 0;
  for (const kind of ['vq', 'text'] as CacheKind[]) {
    const root = path.join(datasetDir, CACHE_DIR[kind]);
    if (!existsSync(root)) continue;
    for (const id of (await readdir(root)).sort()) {
      const dir = path.join(root, id);
      const m = await readCacheManifest(dir).catch(() => null);
      const file = cacheShardPath(datasetDir, kind, id, shard);
      if (!m?.shards[name] || !existsSync(file)) continue;
      const bytes = await readFile(file);
      const entry = {
        samples: tableFromIPC(bytes).numRows,
        sha256_of_file: createHash('sha256').update(bytes).digest('hex'),
      };
      if (entry.samples === m.shards[name].samples && entry.sha256_of_file === m.shards[name].sha256_of_file) continue;
      m.shards[name] = entry;
      await writeCacheManifest(dir, m);
      updated++;
    }
  }
  return updated;
}
