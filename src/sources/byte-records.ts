/**
 * Splitting a text file into records on raw bytes, streamed: one newline-terminated record per line
 * ('lines': TSV, JSONL), or RFC 4180 records where a newline inside a quoted field does not end the
 * record ('csv'). Working on bytes is safe for UTF-8 because '\n', '"' and ',' never occur inside a
 * multi-byte character; records are decoded one by one afterwards.
 *
 * `indexRecords` is the one counting pass made by open(): it counts records and remembers the byte
 * offset of every CHECKPOINT_EVERY-th record, so that reading can seek close to any row.
 */
import { open, stat } from 'node:fs/promises';
import { checkRange } from './util.ts';

export type Framing = 'lines' | 'csv';

const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;
const CHUNK_BYTES = 1 << 20;
/** Records longer than this are refused (a CSV quote that is never closed would otherwise swallow the file). */
export const MAX_RECORD_BYTES = 16 << 20;
export const CHECKPOINT_EVERY = 8192;

/** Where a record starts: its 0-based index among the file's records, byte offset and 1-based line. */
export interface Checkpoint {
  record: number;
  offset: number;
  line: number;
}

export interface RecordIndex {
  /** Records in the file, blank records at the very end excluded. */
  records: number;
  /** checkpoints[k] is record k * CHECKPOINT_EVERY (checkpoints[0] is the first record, after any BOM). */
  checkpoints: Checkpoint[];
  /** File size when indexed, to notice a file changed between open() and reading. */
  size: number;
}

// CSV scanner states.
const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const QUOTE_IN_QUOTED = 3; // just saw '"' inside a quoted field: either an escaped quote or the closing one

/** Finds record ends; keeps its state between calls, so a record may span several buffers. */
export class RecordScanner {
  private state = FIELD_START;
  /** Newlines inside quoted fields seen since the last record end (CSV records can span lines). */
  private innerNewlines = 0;

  constructor(readonly framing: Framing) {}

  /** Index of the '\n' that ends the current record, searching buf from `from`; -1 if buf ends first. */
  next(buf: Uint8Array, from: number): number {
    if (this.framing === 'lines') return buf.indexOf(NL, from);
    let state = this.state;
    for (let i = from; i < buf.length; i++) {
      const b = buf[i];
      if (state === QUOTED) {
        if (b === QUOTE) state = QUOTE_IN_QUOTED;
        else if (b === NL) this.innerNewlines++;
      } else if (b === NL) {
        this.state = FIELD_START;
        return i;
      } else if (b === COMMA) {
        state = FIELD_START;
      } else if (b === QUOTE) {
        // A quote opens a quoted field only at the start of a field; elsewhere it is a literal character.
        if (state === FIELD_START || state === QUOTE_IN_QUOTED) state = QUOTED;
      } else {
        state = UNQUOTED;
      }
    }
    this.state = state;
    return -1;
  }

  /** Number of physical lines the record just ended spanned beyond its first; resets the count. */
  takeInnerNewlines(): number {
    const n = this.innerNewlines;
    this.innerNewlines = 0;
    return n;
  }
}

/** Byte ranges [start, end) of a record's fields: TSV splits on every tab, CSV on commas outside quotes. */
export function fieldRanges(bytes: Uint8Array, framing: 'tsv' | 'csv'): [number, number][] {
  const ranges: [number, number][] = [];
  let start = 0;
  let state = FIELD_START;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (framing === 'tsv') {
      if (b === 0x09) {
        ranges.push([start, i]);
        start = i + 1;
      }
    } else if (state === QUOTED) {
      if (b === QUOTE) state = QUOTE_IN_QUOTED;
    } else if (b === COMMA) {
      ranges.push([start, i]);
      start = i + 1;
      state = FIELD_START;
    } else if (b === QUOTE && (state === FIELD_START || state === QUOTE_IN_QUOTED)) {
      state = QUOTED;
    } else {
      state = UNQUOTED;
    }
  }
  ranges.push([start, bytes.length]);
  return ranges;
}

function hasBom(buf: Uint8Array): boolean {
  return buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf;
}

/** Names the compression of a file that starts with a gzip/zstd/xz magic number (never valid UTF-8). */
function compressedKind(buf: Uint8Array): string | undefined {
  const starts = (...magic: number[]) => magic.every((b, i) => buf[i] === b);
  if (starts(0x1f, 0x8b)) return 'gzip';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a)) return 'xz';
  return undefined;
}

function tooLong(path: string, line: number): Error {
  return new Error(
    `${path} line ${line}: record longer than ${MAX_RECORD_BYTES >> 20} MiB` +
      ' (an unclosed quote, or not a text file?)',
  );
}

/** One pass over the file: counts records (trailing blank lines are not records) and sets checkpoints. */
export async function indexRecords(path: string, framing: Framing): Promise<RecordIndex> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    const scanner = new RecordScanner(framing);
    const checkpoints: Checkpoint[] = [];
    let records = 0;
    let trailingBlanks = 0;
    let line = 1;
    let recordStart = 0;
    let lastByte = -1; // last byte of the previous buffer, for one-byte records split across reads
    let bufOffset = 0;
    for (;;) {
      const { bytesRead: n } = await fh.read(buf, 0, CHUNK_BYTES, bufOffset);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      let pos = 0;
      if (bufOffset === 0) {
        const packed = compressedKind(chunk);
        if (packed)
          throw new Error(
            `${path}: looks ${packed}-compressed; decompress it first (text formats are read as plain text)`,
          );
        if (hasBom(chunk)) pos = recordStart = 3;
        checkpoints.push({ record: 0, offset: recordStart, line: 1 });
      }
      let i: number;
      while ((i = scanner.next(chunk, pos)) >= 0) {
        const end = bufOffset + i;
        const length = end - recordStart;
        if (length > MAX_RECORD_BYTES) throw tooLong(path, line);
        const blank = length === 0 || (length === 1 && (i > 0 ? chunk[i - 1] : lastByte) === CR);
        trailingBlanks = blank ? trailingBlanks + 1 : 0;
        records++;
        line += 1 + scanner.takeInnerNewlines();
        recordStart = end + 1;
        if (records % CHECKPOINT_EVERY === 0) checkpoints.push({ record: records, offset: recordStart, line });
        pos = i + 1;
      }
      if (bufOffset + n - recordStart > MAX_RECORD_BYTES) throw tooLong(path, line);
      lastByte = chunk[n - 1];
      bufOffset += n;
    }
    if (checkpoints.length === 0) checkpoints.push({ record: 0, offset: 0, line: 1 });
    // A last record without a final newline.
    const rest = bufOffset - recordStart;
    if (rest > 0) {
      const blank = rest === 1 && lastByte === CR;
      trailingBlanks = blank ? trailingBlanks + 1 : 0;
      records++;
    }
    return { records: records - trailingBlanks, checkpoints, size };
  } finally {
    await fh.close();
  }
}

export interface ByteRecord {
  /** The record without its '\n' (a trailing '\r' is left for the parser). */
  bytes: Buffer;
  /** 0-based record index in the file and 1-based line where it starts. */
  record: number;
  line: number;
}

/**
 * Streams records from a checkpoint to the end of the file, in batches (one per read; batching keeps
 * per-record async overhead away). The caller stops when it has enough.
 */
export async function* readRecords(path: string, framing: Framing, from: Checkpoint): AsyncGenerator<ByteRecord[]> {
  const fh = await open(path, 'r');
  try {
    const scanner = new RecordScanner(framing);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let { record, line, offset } = from;
    for (;;) {
      const chunk = Buffer.allocUnsafe(CHUNK_BYTES); // fresh per read: yielded records may point into it
      const { bytesRead: n } = await fh.read(chunk, 0, CHUNK_BYTES, offset);
      if (n === 0) break;
      const data = chunk.subarray(0, n);
      const batch: ByteRecord[] = [];
      let pos = 0;
      let i: number;
      while ((i = scanner.next(data, pos)) >= 0) {
        const piece = data.subarray(pos, i);
        const bytes = pendingBytes > 0 ? Buffer.concat([...pending, piece]) : piece;
        pending = [];
        pendingBytes = 0;
        batch.push({ bytes, record, line });
        record++;
        line += 1 + scanner.takeInnerNewlines();
        pos = i + 1;
      }
      if (pos < n) {
        pending.push(data.subarray(pos));
        pendingBytes += n - pos;
        if (pendingBytes > MAX_RECORD_BYTES) throw tooLong(path, line);
      }
      offset += n;
      if (batch.length > 0) yield batch;
    }
    if (pendingBytes > 0) yield [{ bytes: Buffer.concat(pending), record, line }];
  } finally {
    await fh.close();
  }
}

/** The checkpoint at or before `record`. */
export function checkpointFor(index: RecordIndex, record: number): Checkpoint {
  const k = Math.min(Math.floor(record / CHECKPOINT_EVERY), index.checkpoints.length - 1);
  return index.checkpoints[k];
}

/**
 * Data rows [start, end) of a file indexed as `index`, each made by `toRow`, in batches. `skip` records (a
 * header line) come before data row 0. Throws when the file changed since it was indexed.
 */
export async function* readRowRange<T>(
  path: string,
  index: RecordIndex,
  framing: Framing,
  skip: number,
  start: number,
  end: number,
  toRow: (rec: ByteRecord) => T,
): AsyncGenerator<T[]> {
  checkRange(path, start, end);
  if (start === end) return;
  const size = (await stat(path)).size;
  if (size !== index.size)
    throw new Error(`${path}: file changed since it was opened (size ${index.size}, now ${size})`);
  const first = start + skip;
  let row = start;
  for await (const records of readRecords(path, framing, checkpointFor(index, first))) {
    const batch: T[] = [];
    for (const rec of records) {
      if (rec.record < first) continue;
      batch.push(toRow(rec));
      if (++row === end) break;
    }
    if (batch.length > 0) yield batch;
    if (row === end) return;
  }
  throw new Error(`${path}: file ended after ${row} rows, expected at least ${end} (changed since it was opened?)`);
}
