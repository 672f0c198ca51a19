/**
 * A Record is one input row of a pipeline's metadata, as every later stage sees it.
 * `row` is the row's global position in the pipeline's input (all input files in sorted order),
 * which fixes its shard and key for ever: shard = floor(row / S), position = row % S.
 */
export interface SourceRecord {
  /** Global 0-based row index across all input files, in sorted file order. */
  row: number;
  /** Input file this row came from and its 0-based row index inside that file (for error messages). */
  file: string;
  fileRow: number;
  /** Image URL (http/https), or empty when `localPath` is set (ImageNet folders). */
  url: string;
  /** Caption, or null when the row has none (ImageNet). */
  caption: string | null;
  /** Local image file to read instead of downloading (ImageNet folders). */
  localPath?: string;
  /** Class index for class-conditional datasets (ImageNet: position of the wnid in sorted order). */
  cls?: number;
  /** Source columns kept for filters and for the sample's JSON (mapped names, e.g. similarity, punsafe). */
  meta: Record<string, unknown>;
  /**
   * Set when the row itself is bad (missing URL, wrong column count, invalid UTF-8 ...). The row still
   * takes its place (so keys stay stable) and ends as `failed` with this message.
   */
  error?: string;
}

/** A pipeline input: one or more files read in sorted order as one stream of rows. */
export interface Source {
  /** Files in the order they are read. */
  readonly files: string[];
  /**
   * Checks every file up front (readable, parseable header/footer, required columns present) and
   * returns the total row count. Throws an Error naming the file and what is wrong.
   */
  open(): Promise<{ totalRows: number }>;
  /** Rows [start, end) of the whole input, in order. Cheap to start at any offset where the format allows. */
  rows(start: number, end: number): AsyncIterable<SourceRecord>;
}
