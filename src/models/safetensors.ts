// safetensors read/write (https://github.com/huggingface/safetensors format):
//   u64 little-endian N | N bytes of JSON header | raw little-endian tensor bytes.
// Reading is lazy: the header is parsed on open and each tensor's bytes are read from the file handle on
// demand, so a large checkpoint is never held twice in memory. F16/BF16 decode to float32 (tfjs computes
// in float32 only), I64 narrows to int32 when every value fits.
import * as tf from '@tensorflow/tfjs';
import { promises as fsp, constants as fsConstants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeBFloat16, decodeFloat16, encodeBFloat16, encodeFloat16 } from '../runtime/float16.ts';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';
export type TensorArray = Float32Array | Int32Array | Uint8Array;

export interface TensorInfo {
  /** Storage dtype in the file. */
  dtype: SafetensorsDtype;
  shape: number[];
}

/** A tensor's values in JS: F32/F16/BF16 -> Float32Array, I32/I64 -> Int32Array, U8/BOOL -> Uint8Array. */
export interface TensorData extends TensorInfo {
  data: TensorArray;
}

/** The read API shared by a single file and a sharded checkpoint. */
export interface CheckpointReader {
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  read(name: string): Promise<TensorData>;
  /** float32 for float dtypes, int32 for I32/I64/U8, bool for BOOL. */
  tensor(name: string): Promise<tf.Tensor>;
  metadata(): Record<string, string>;
  close(): Promise<void>;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1, BOOL: 1 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024; // the reference implementation's limit
const READ_CHUNK = 1 << 30; // fs reads are limited to < 2 GiB each

if (os.endianness() !== 'LE') throw new Error('safetensors.ts assumes a little-endian host');

interface Entry extends TensorInfo {
  begin: number; // absolute byte offsets in the file
  end: number;
}

function isDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(BYTES, x);
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export class SafetensorsFile implements CheckpointReader {
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: fsp.FileHandle,
    private readonly entries: Map<string, Entry>,
    private readonly meta: Record<string, string>,
  ) {}

  static async open(file: string): Promise<SafetensorsFile> {
    const handle = await fsp.open(file, 'r');
    try {
      const { entries, meta } = await parseHeader(file, handle);
      return new SafetensorsFile(file, handle, entries, meta);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape] };
  }

  metadata(): Record<string, string> {
    return { ...this.meta };
  }

  async read(name: string): Promise<TensorData> {
    const e = this.entry(name);
    if (this.closed) throw new Error(`${this.path}: read('${name}') after close()`);
    const bytes = new Uint8Array(e.end - e.begin);
    for (let off = 0; off < bytes.length; off += READ_CHUNK) {
      const len = Math.min(READ_CHUNK, bytes.length - off);
      const { bytesRead } = await this.handle.read(bytes, off, len, e.begin + off);
      if (bytesRead !== len) throw new Error(`${this.path}: truncated while reading tensor '${name}'`);
    }
    return { dtype: e.dtype, shape: [...e.shape], data: decode(bytes, e.dtype, name, this.path) };
  }

  async tensor(name: string): Promise<tf.Tensor> {
    return toTensor(await this.read(name));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`${this.path}: no tensor named '${name}'`);
    return e;
  }
}

async function readExactly(file: string, handle: fsp.FileHandle, length: number, position: number, what: string) {
  const buf = new Uint8Array(length);
  const { bytesRead } = await handle.read(buf, 0, length, position);
  if (bytesRead !== length) throw new Error(`${file}: truncated safetensors file (${what})`);
  return buf;
}

async function parseHeader(file: string, handle: fsp.FileHandle) {
  const { size } = await handle.stat();
  if (size < 8) throw new Error(`${file}: not a safetensors file (${size} bytes, no header length)`);
  const lenBytes = await readExactly(file, handle, 8, 0, 'header length');
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw new Error(`${file}: bad safetensors header length ${headerLen}`);
  const n = Number(headerLen);
  if (8 + n > size) throw new Error(`${file}: truncated safetensors file (header of ${n} bytes, file has ${size})`);
  const text = new TextDecoder('utf-8', { fatal: true }).decode(await readExactly(file, handle, n, 8, 'header'));
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: bad safetensors header (not JSON: ${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new Error(`${file}: bad safetensors header (not a JSON object)`);
  }
  const dataStart = 8 + n;
  const entries = new Map<string, Entry>();
  let meta: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      meta = parseMetadata(file, value);
      continue;
    }
    entries.set(name, parseEntry(file, name, value, dataStart, size));
  }
  return { entries, meta };
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) throw new Error(`${file}: bad safetensors __metadata__`);
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) meta[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return meta;
}

function parseEntry(file: string, name: string, value: unknown, dataStart: number, size: number): Entry {
  const bad = (why: string) => new Error(`${file}: bad safetensors header entry for tensor '${name}': ${why}`);
  const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof v !== 'object' || v === null) throw bad('not an object');
  if (!isDtype(v.dtype)) throw bad(`unsupported dtype ${JSON.stringify(v.dtype)}`);
  const shape = v.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad('bad shape');
  const offsets = v.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
    throw bad('bad data_offsets');
  }
  const [b, e] = offsets as number[];
  const expected = numel(shape) * BYTES[v.dtype];
  if (e - b !== expected)
    throw bad(`data_offsets span ${e - b} bytes, shape ${JSON.stringify(shape)} needs ${expected}`);
  if (dataStart + e > size) {
    throw new Error(
      `${file}: truncated safetensors file (tensor '${name}' ends at byte ${dataStart + e}, file has ${size})`,
    );
  }
  return { dtype: v.dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e };
}

function decode(bytes: Uint8Array, dtype: SafetensorsDtype, name: string, file: string): TensorArray {
  const buf = bytes.buffer; // freshly allocated, so aligned
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
      return decodeFloat16(new Uint16Array(buf));
    case 'BF16':
      return decodeBFloat16(new Uint16Array(buf));
    case 'I32':
      return new Int32Array(buf);
    case 'U8':
    case 'BOOL':
      return bytes;
    case 'I64':
      return narrowInt64(new Int32Array(buf), name, file);
  }
}

/** int64 pairs (lo, hi) -> int32; an error if any value does not fit. */
function narrowInt64(words: Int32Array, name: string, file: string): Int32Array {
  const out = new Int32Array(words.length / 2);
  for (let i = 0; i < out.length; i++) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    if (hi !== lo >> 31) {
      throw new Error(`${file}: tensor '${name}' is I64 with a value outside the int32 range (element ${i})`);
    }
    out[i] = lo;
  }
  return out;
}

export function toTensor(t: TensorData): tf.Tensor {
  if (t.data instanceof Float32Array) return tf.tensor(t.data, t.shape, 'float32');
  if (t.dtype === 'BOOL') return tf.tensor(t.data, t.shape, 'bool');
  if (t.data instanceof Uint8Array) return tf.tensor(Int32Array.from(t.data), t.shape, 'int32');
  return tf.tensor(t.data, t.shape, 'int32');
}

/** A checkpoint split over several files by `*.safetensors.index.json` (`weight_map`: name -> file). */
class ShardedCheckpoint implements CheckpointReader {
  constructor(
    private readonly indexPath: string,
    private readonly byName: Map<string, SafetensorsFile>,
    private readonly files: SafetensorsFile[],
    private readonly meta: Record<string, string>,
  ) {}

  static async open(indexPath: string): Promise<ShardedCheckpoint> {
    let index: { weight_map?: Record<string, string>; metadata?: Record<string, unknown> };
    try {
      index = JSON.parse(await fsp.readFile(indexPath, 'utf8'));
    } catch (err) {
      throw new Error(`${indexPath}: cannot read checkpoint index (${(err as Error).message})`);
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') throw new Error(`${indexPath}: no weight_map`);
    const dir = path.dirname(indexPath);
    const shardNames = [...new Set(Object.values(index.weight_map))].sort();
    const files: SafetensorsFile[] = [];
    try {
      for (const shard of shardNames) files.push(await SafetensorsFile.open(path.join(dir, shard)));
    } catch (err) {
      await Promise.all(files.map((f) => f.close()));
      throw err;
    }
    const byFile = new Map(shardNames.map((s, i) => [s, files[i]]));
    const byName = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(index.weight_map)) {
      const f = byFile.get(shard)!;
      if (!f.has(name)) throw new Error(`${indexPath}: weight_map puts '${name}' in ${shard}, which does not hold it`);
      byName.set(name, f);
    }
    const meta = index.metadata ? parseMetadata(indexPath, index.metadata) : {};
    return new ShardedCheckpoint(indexPath, byName, files, meta);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }
  async read(name: string): Promise<TensorData> {
    return this.file(name).read(name);
  }
  async tensor(name: string): Promise<tf.Tensor> {
    return this.file(name).tensor(name);
  }
  metadata(): Record<string, string> {
    return { ...this.meta };
  }
  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
  private file(name: string): SafetensorsFile {
    const f = this.byName.get(name);
    if (!f) throw new Error(`${this.indexPath}: no tensor named '${name}'`);
    return f;
  }
}

/**
 * Opens a checkpoint: a `.safetensors` file, a `*.safetensors.index.json`, or a directory holding
 * `model.safetensors.index.json`, `model.safetensors`, or exactly one `.safetensors` file / index.
 */
export async function openCheckpoint(pathOrDir: string): Promise<CheckpointReader> {
  const stat = await fsp.stat(pathOrDir).catch(() => undefined);
  if (!stat) throw new Error(`${pathOrDir}: no such checkpoint file or directory`);
  if (stat.isFile()) {
    return pathOrDir.endsWith('.index.json') ? ShardedCheckpoint.open(pathOrDir) : SafetensorsFile.open(pathOrDir);
  }
  const exists = (f: string) =>
    fsp.access(path.join(pathOrDir, f), fsConstants.R_OK).then(
      () => true,
      () => false,
    );
  if (await exists('model.safetensors.index.json'))
    return ShardedCheckpoint.open(path.join(pathOrDir, 'model.safetensors.index.json'));
  if (await exists('model.safetensors')) return SafetensorsFile.open(path.join(pathOrDir, 'model.safetensors'));
  const listing = await fsp.readdir(pathOrDir);
  const indexes = listing.filter((f) => f.endsWith('.safetensors.index.json'));
  if (indexes.length === 1) return ShardedCheckpoint.open(path.join(pathOrDir, indexes[0]));
  const singles = listing.filter((f) => f.endsWith('.safetensors'));
  if (indexes.length === 0 && singles.length === 1) return SafetensorsFile.open(path.join(pathOrDir, singles[0]));
  throw new Error(
    `${pathOrDir}: expected model.safetensors, model.safetensors.index.json or a single .safetensors file ` +
      `(found ${singles.length + indexes.length} candidates)`,
  );
}

/** Reads every tensor of a checkpoint into memory (convenient for small files). */
export async function loadSafetensors(file: string): Promise<Record<string, TensorData>> {
  const ckpt = await openCheckpoint(file);
  try {
    const out: Record<string, TensorData> = {};
    for (const name of ckpt.names()) out[name] = await ckpt.read(name);
    return out;
  } finally {
    await ckpt.close();
  }
}

// ---------------------------------------------------------------- writing

export type SaveInput = tf.Tensor | { dtype: SafetensorsDtype; shape: number[]; data: TensorArray | ArrayLike<number> };

export interface SaveOptions {
  /** Storage dtype for float tensors (default F32). */
  dtype?: 'F32' | 'F16';
}

interface Pending {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: () => Promise<Uint8Array>;
}

function encode(values: TensorArray | ArrayLike<number>, dtype: SafetensorsDtype, name: string): Uint8Array {
  const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (dtype) {
    case 'F32':
      return asBytes(values instanceof Float32Array ? values : Float32Array.from(values));
    case 'F16':
      return asBytes(encodeFloat16(values instanceof Float32Array ? values : Float32Array.from(values)));
    case 'BF16':
      return asBytes(encodeBFloat16(values instanceof Float32Array ? values : Float32Array.from(values)));
    case 'I32':
      return asBytes(values instanceof Int32Array ? values : Int32Array.from(values));
    case 'U8':
    case 'BOOL':
      return asBytes(values instanceof Uint8Array ? values : Uint8Array.from(values));
    case 'I64': {
      const wide = new BigInt64Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (!Number.isInteger(v)) throw new Error(`saveSafetensors: tensor '${name}' has a non-integer value for I64`);
        wide[i] = BigInt(v);
      }
      return asBytes(wide);
    }
  }
}

function plan(name: string, input: SaveInput, floatDtype: 'F32' | 'F16'): Pending {
  if (input instanceof tf.Tensor) {
    const t = input;
    const dtype: SafetensorsDtype =
      t.dtype === 'float32'
        ? floatDtype
        : t.dtype === 'int32'
          ? 'I32'
          : t.dtype === 'bool'
            ? 'BOOL'
            : (() => {
                throw new Error(`saveSafetensors: tensor '${name}' has unsupported dtype ${t.dtype}`);
              })();
    return {
      name,
      dtype,
      shape: [...t.shape],
      bytes: async () => encode((await t.data()) as TensorArray, dtype, name),
    };
  }
  if (!isDtype(input.dtype)) throw new Error(`saveSafetensors: tensor '${name}' has unsupported dtype ${input.dtype}`);
  const dtype = input.dtype === 'F32' ? floatDtype : input.dtype;
  if (input.data.length !== numel(input.shape)) {
    throw new Error(
      `saveSafetensors: tensor '${name}' has ${input.data.length} values for shape ${JSON.stringify(input.shape)}`,
    );
  }
  return { name, dtype, shape: [...input.shape], bytes: async () => encode(input.data, dtype, name) };
}

/**
 * Writes a safetensors file: tensors in sorted-name order, header space-padded to a multiple of 8 bytes,
 * written to a temporary name and renamed so readers never see a partial file. Float32 tensors are stored
 * as F32, or F16 with `opts.dtype = 'F16'`.
 */
export async function saveSafetensors(
  file: string,
  tensors: Record<string, SaveInput>,
  metadata?: Record<string, string>,
  opts: SaveOptions = {},
): Promise<void> {
  const items = Object.keys(tensors)
    .sort()
    .map((name) => plan(name, tensors[name], opts.dtype ?? 'F32'));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`saveSafetensors: metadata '${k}' must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const it of items) {
    const size = numel(it.shape) * BYTES[it.dtype];
    header[it.name] = { dtype: it.dtype, shape: it.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const lenBytes = Buffer.alloc(8);
  lenBytes.writeBigUInt64LE(BigInt(headerBytes.length));

  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const handle = await fsp.open(tmp, 'w');
  try {
    let position = 0;
    const writeAll = async (bytes: Uint8Array) => {
      for (let off = 0; off < bytes.length;) {
        const { bytesWritten } = await handle.write(bytes, off, Math.min(READ_CHUNK, bytes.length - off), position);
        off += bytesWritten;
        position += bytesWritten;
      }
    };
    await writeAll(lenBytes);
    await writeAll(headerBytes);
    for (const it of items) await writeAll(await it.bytes()); // one tensor in memory at a time
    await handle.sync();
    await handle.close();
    await fsp.rename(tmp, file);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}
