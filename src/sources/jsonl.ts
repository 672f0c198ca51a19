/**
 * JSON Lines: one JSON object per line, streamed. A line that is not valid UTF-8, not valid JSON or not
 * an object becomes a row with `error`, keeping its place.
 */
import type { RawRow, TableFile, TableInfo } from './table.ts';
import { indexRecords, readRowRange, type RecordIndex } from './byte-records.ts';
import { fsProblem } from './util.ts';

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** open() takes its column names from the first object found within this many lines. */
const SAMPLE_LINES = 100;

export class JsonlFile implements TableFile {
  private index?: RecordIndex;

  constructor(readonly path: string) {}

  async open(): Promise<TableInfo> {
    let index: RecordIndex;
    try {
      index = await indexRecords(this.path, 'lines');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code) throw new Error(`${this.path}: ${fsProblem(err)}`);
      throw err;
    }
    this.index = index;
    // Keys vary per line, so the first object only serves to catch a misnamed URL/caption column early.
    let columns: string[] = [];
    for await (const batch of this.rows(0, Math.min(index.records, SAMPLE_LINES))) {
      const first = batch.find((row) => row.values);
      if (first?.values) {
        columns = Object.keys(first.values);
        break;
      }
    }
    return { rows: index.records, columns, columnsComplete: false };
  }

  async *rows(start: number, end: number): AsyncGenerator<RawRow[]> {
    if (!this.index) throw new Error(`${this.path}: rows() called before open()`);
    yield* readRowRange(this.path, this.index, 'lines', 0, start, end, (rec) => parseLine(rec.bytes, rec.line));
  }
}

function parseLine(bytes: Buffer, line: number): RawRow {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { error: 'invalid UTF-8', line };
  }
  if (text.endsWith('\r')) text = text.slice(0, -1);
  if (text.trim() === '') return { error: 'empty line', line };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `not valid JSON (${(err as Error).message})`, line };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    return { error: `expected a JSON object, found ${kind}`, line };
  }
  return { values: value as Record<string, unknown>, line };
}
