/**
 * The contract between one input file of a tabular format (parquet, TSV/CSV, JSONL) and the source that
 * strings files together. A file yields raw rows keyed by its own column names; `columns.ts` maps them
 * to SourceRecords with the pipeline's column configuration.
 */

/** One row as read from a file, before column mapping. */
export type RawRow =
  | { values: Record<string, unknown>; error?: undefined; line?: number }
  | { values?: undefined; error: string; line?: number };
// `line`: 1-based physical line where the row starts, when the format has lines (for error messages).

export interface TableInfo {
  /** Data rows in the file (header line and blank lines at the end of the file excluded). */
  rows: number;
  /** Column names. */
  columns: string[];
  /**
   * False when `columns` is only what the first row had (JSONL): other rows may differ, so only the
   * URL and caption columns are checked against it.
   */
  columnsComplete: boolean;
}

/** One input file read as a table: checked once with `open`, then read by row range. */
export interface TableFile {
  readonly path: string;
  /** Checks the file (readable, parseable, header) and counts its rows. Throws an Error naming the file. */
  open(): Promise<TableInfo>;
  /**
   * Rows [start, end) of this file, in order and in batches, exactly end - start of them (open() must
   * have succeeded). `columns`: the columns the caller needs; formats that can skip the others do.
   */
  rows(start: number, end: number, columns: string[] | null): AsyncIterable<RawRow[]>;
}
