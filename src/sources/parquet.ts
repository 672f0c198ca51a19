/**
 * Parquet files read by column name with hyparquet, streamed one row group at a time: the footer gives
 * the row count of every row group, so `rows(start, end)` reads only the row groups overlapping the
 * range, and only the requested columns of them. The file is read through positioned reads on a file
 * handle, never loaded whole. All codecs hyparquet-compressors knows (snappy, gzip, zstd, brotli, lz4).
 */
import { open, type FileHandle } from 'node:fs/promises';
import {
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
  type AsyncBuffer,
  type FileMetaData,
} from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import type { RawRow, TableFile, TableInfo } from './table.ts';
import { checkRange, fsProblem } from './util.ts';

export class ParquetFile implements TableFile {
  /** Bytes read from the file so far (footer and data); tests use it to check that slices skip row groups. */
  bytesRead = 0;
  private metadata?: FileMetaData;
  /** groupStarts[g] = first row of row group g; the last entry is the file's row count. */
  private groupStarts: number[] = [];
  private size = 0;

  constructor(readonly path: string) {}

  async open(): Promise<TableInfo> {
    const { path } = this;
    const fh = await openFile(path);
    try {
      const info = await fh.stat();
      if (!info.isFile()) throw new Error(`${path}: not a regular file`);
      const size = info.size;
      const invalid = (why: string) => new Error(`${path}: not a valid parquet file (${why})`);
      if (size < 12) throw invalid(`only ${size} bytes`);
      const file = this.buffer(fh, size);
      const head = Buffer.from(await file.slice(0, 4)).toString('latin1');
      if (head !== 'PAR1') throw invalid('does not start with PAR1');
      let metadata: FileMetaData;
      try {
        metadata = await parquetMetadataAsync(file);
      } catch (err) {
        throw invalid(`${(err as Error).message}; truncated or not parquet?`);
      }
      this.groupStarts = checkLayout(metadata, size, invalid);
      this.metadata = metadata;
      this.size = size;
      const columns = parquetSchema(metadata).children.map((c) => c.element.name);
      return { rows: this.groupStarts[this.groupStarts.length - 1], columns, columnsComplete: true };
    } finally {
      await fh.close();
    }
  }

  async *rows(start: number, end: number, columns: string[] | null): AsyncGenerator<RawRow[]> {
    const { path, metadata, groupStarts } = this;
    if (!metadata) throw new Error(`${path}: rows() called before open()`);
    checkRange(path, start, end);
    const total = groupStarts[groupStarts.length - 1];
    if (end > total) throw new Error(`${path}: rows [${start}, ${end}) requested, the file has ${total}`);
    if (start === end) return;
    const fh = await openFile(path);
    try {
      const size = (await fh.stat()).size;
      if (size !== this.size)
        throw new Error(`${path}: file changed since it was opened (size ${this.size}, now ${size})`);
      const file = this.buffer(fh, size);
      for (let g = 0; g < metadata.row_groups.length; g++) {
        const from = Math.max(start, groupStarts[g]);
        const to = Math.min(end, groupStarts[g + 1]);
        if (from >= to) continue;
        let rows: Record<string, unknown>[];
        try {
          rows = await parquetReadObjects({
            file,
            metadata,
            compressors,
            rowStart: from,
            rowEnd: to,
            useOffsetIndex: true,
            ...(columns ? { columns } : {}),
          });
        } catch (err) {
          throw new Error(`${path}: cannot read row group ${g} (rows ${from}-${to - 1}): ${(err as Error).message}`);
        }
        if (rows.length !== to - from) {
          throw new Error(
            `${path}: row group ${g} gave ${rows.length} rows for [${from}, ${to}), expected ${to - from}`,
          );
        }
        yield rows.map((values) => ({ values }));
      }
    } finally {
      await fh.close();
    }
  }

  /** An AsyncBuffer over positioned reads of an open file handle, counting bytes read. */
  private buffer(fh: FileHandle, size: number): AsyncBuffer {
    return {
      byteLength: size,
      slice: async (start: number, end = size): Promise<ArrayBuffer> => {
        const bytes = new Uint8Array(Math.max(0, end - start));
        let done = 0;
        while (done < bytes.length) {
          const { bytesRead } = await fh.read(bytes, done, bytes.length - done, start + done);
          if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${start + done}`);
          done += bytesRead;
        }
        this.bytesRead += done;
        return bytes.buffer;
      },
    };
  }
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw new Error(`${path}: ${fsProblem(err)}`);
  }
}

/** Checks row counts and that every column chunk lies inside the file; returns the row groups' first rows. */
function checkLayout(metadata: FileMetaData, size: number, invalid: (why: string) => Error): number[] {
  const starts = [0];
  const dataEnd = size - 8 - metadata.metadata_length;
  metadata.row_groups.forEach((group, g) => {
    starts.push(starts[g] + Number(group.num_rows));
    for (const chunk of group.columns) {
      const meta = chunk.meta_data;
      if (!meta) throw invalid(`row group ${g} has a column without metadata`);
      const offset = Number(meta.dictionary_page_offset || meta.data_page_offset);
      const chunkEnd = offset + Number(meta.total_compressed_size);
      if (offset < 4 || chunkEnd > dataEnd) {
        throw invalid(`row group ${g} column ${meta.path_in_schema.join('.')} lies outside the file's data`);
      }
    }
  });
  const total = starts[starts.length - 1];
  if (total !== Number(metadata.num_rows)) {
    throw invalid(`row groups hold ${total} rows, the footer says ${metadata.num_rows}`);
  }
  return starts;
}
