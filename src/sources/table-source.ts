/**
 * Several table files read as one stream: global row = row offset of the file + row in the file.
 * open() checks every file (reporting all problems at once) before anything is read.
 */
import type { InputConfig } from '../pipeline/config-types.ts';
import type { Source, SourceRecord } from './record.ts';
import type { TableFile } from './table.ts';
import { checkColumns, toRecord } from './columns.ts';
import { checkRange, mapLimit } from './util.ts';

/** Files checked at the same time by open() (each is a footer read or a counting pass). */
const OPEN_CONCURRENCY = 4;

interface OpenedFile {
  table: TableFile;
  offset: number;
  rows: number;
  readColumns: string[] | null;
}

export class TableSource implements Source {
  readonly files: string[];
  private opening?: Promise<OpenedFile[]>;

  constructor(
    private readonly tables: TableFile[],
    private readonly input: InputConfig,
  ) {
    this.files = tables.map((t) => t.path);
  }

  async open(): Promise<{ totalRows: number }> {
    const opened = await this.openAll();
    const last = opened[opened.length - 1];
    return { totalRows: last ? last.offset + last.rows : 0 };
  }

  private openAll(): Promise<OpenedFile[]> {
    this.opening ??= this.checkFiles().catch((err: unknown) => {
      this.opening = undefined; // let a later call try again
      throw err;
    });
    return this.opening;
  }

  private async checkFiles(): Promise<OpenedFile[]> {
    const problems: string[] = [];
    const results = await mapLimit(this.tables, OPEN_CONCURRENCY, async (table) => {
      try {
        const info = await table.open();
        return { info, readColumns: checkColumns(table.path, info, this.input) };
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
        return undefined;
      }
    });
    if (problems.length === 1) throw new Error(problems[0]);
    if (problems.length > 1) {
      throw new Error(
        `${problems.length} of ${this.tables.length} input files have problems:\n  ${problems.sort().join('\n  ')}`,
      );
    }
    let offset = 0;
    return results.map((r, i) => {
      const file = { table: this.tables[i], offset, rows: r!.info.rows, readColumns: r!.readColumns };
      offset += file.rows;
      return file;
    });
  }

  /** Rows [start, end) of the whole input; `end` beyond the last row is clamped (the last shard is short). */
  async *rows(start: number, end: number): AsyncGenerator<SourceRecord> {
    checkRange('rows()', start, end);
    const opened = await this.openAll();
    for (const { table, offset, rows, readColumns } of opened) {
      const from = Math.max(start, offset);
      const to = Math.min(end, offset + rows);
      if (from >= to) continue;
      let fileRow = from - offset;
      for await (const batch of table.rows(from - offset, to - offset, readColumns)) {
        for (const raw of batch) {
          yield toRecord(raw, { row: offset + fileRow, file: table.path, fileRow }, this.input);
          fileRow++;
        }
      }
      if (fileRow !== to - offset) {
        throw new Error(
          `${table.path}: gave ${fileRow - (from - offset)} rows for [${from - offset}, ${to - offset}), expected ${to - from}`,
        );
      }
    }
  }
}
