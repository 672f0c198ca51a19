/**
 * TSV and CSV files, with or without a header line, streamed record by record.
 * TSV follows the img2dataset/pandas-export convention: split on tabs, no quoting, trailing '\r' dropped.
 * CSV follows RFC 4180 (quoted fields may hold commas, quotes and newlines).
 * A bad row (wrong column count, invalid UTF-8, broken quoting) becomes a row with `error`, keeping its place.
 */
import { isUtf8 } from 'node:buffer';
import type { RawRow, TableFile, TableInfo } from './table.ts';
import {
  fieldRanges,
  indexRecords,
  readRecords,
  readRowRange,
  type ByteRecord,
  type RecordIndex,
} from './byte-records.ts';
import { parseCsvRecord } from './csv.ts';
import { fsProblem } from './util.ts';

export interface DelimitedOptions {
  format: 'tsv' | 'csv';
  /** Whether the first line names the columns. */
  header: boolean;
  /** Column names in order, for files without a header. */
  columns?: string[];
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

type Fields = { fields: string[] } | { error: string };

export class DelimitedFile implements TableFile {
  private index?: RecordIndex;
  private columns: string[] = [];

  constructor(
    readonly path: string,
    private readonly opts: DelimitedOptions,
  ) {}

  private get framing() {
    return this.opts.format === 'csv' ? ('csv' as const) : ('lines' as const);
  }

  async open(): Promise<TableInfo> {
    const { path, opts } = this;
    let index: RecordIndex;
    try {
      index = await indexRecords(path, this.framing);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code) throw new Error(`${path}: ${fsProblem(err)}`);
      throw err;
    }
    let columns: string[];
    let rows = index.records;
    if (opts.header) {
      if (index.records === 0) throw new Error(`${path}: empty file, expected a header line`);
      const first = await firstRecord(path, this.framing, index);
      const parsed = this.parseFields(first.bytes, null);
      if ('error' in parsed) throw new Error(`${path} line 1 (header): ${parsed.error}`);
      columns = parsed.fields;
      rows -= 1;
    } else {
      if (!opts.columns?.length) {
        throw new Error(
          `${path}: ${opts.format} file without a header needs input.columns (the column names in order)`,
        );
      }
      columns = opts.columns;
    }
    const seen = new Set<string>();
    for (const name of columns) {
      if (seen.has(name)) {
        throw new Error(
          `${path}: column name "${name}" appears twice in ${opts.header ? 'the header' : 'input.columns'}`,
        );
      }
      seen.add(name);
    }
    this.index = index;
    this.columns = columns;
    return { rows, columns, columnsComplete: true };
  }

  async *rows(start: number, end: number): AsyncGenerator<RawRow[]> {
    if (!this.index) throw new Error(`${this.path}: rows() called before open()`);
    const skip = this.opts.header ? 1 : 0;
    yield* readRowRange(this.path, this.index, this.framing, skip, start, end, (rec) => this.toRaw(rec));
  }

  private toRaw(rec: ByteRecord): RawRow {
    const line = rec.line;
    const parsed = this.parseFields(rec.bytes, this.columns);
    if ('error' in parsed) return { error: parsed.error, line };
    const { fields } = parsed;
    const columns = this.columns;
    if (fields.length === 1 && fields[0] === '' && columns.length > 1) return { error: 'empty line', line };
    if (fields.length !== columns.length) {
      return { error: `expected ${columns.length} columns (${columns.join(', ')}), found ${fields.length}`, line };
    }
    const values: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) values[columns[i]] = fields[i];
    return { values, line };
  }

  /** Decodes (strict UTF-8) and splits one record. `names` label columns in error messages. */
  private parseFields(bytes: Buffer, names: string[] | null): Fields {
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      const bad = fieldRanges(bytes, this.opts.format).findIndex(([s, e]) => !isUtf8(bytes.subarray(s, e)));
      return { error: bad < 0 ? 'invalid UTF-8' : `invalid UTF-8 in ${columnLabel(bad, names)}` };
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (this.opts.format === 'tsv') return { fields: text.split('\t') };
    const parsed = parseCsvRecord(text);
    if ('error' in parsed) return { error: `${parsed.error} (${columnLabel(parsed.column, names)})` };
    return parsed;
  }
}

function columnLabel(index: number, names: string[] | null): string {
  const name = names?.[index];
  return name === undefined ? `column ${index + 1}` : `column ${index + 1} "${name}"`;
}

async function firstRecord(path: string, framing: 'lines' | 'csv', index: RecordIndex): Promise<ByteRecord> {
  for await (const records of readRecords(path, framing, index.checkpoints[0])) return records[0];
  throw new Error(`${path}: empty file, expected a header line`);
}
