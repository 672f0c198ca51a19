/**
 * The sources stage: a pipeline's `input` config -> a Source, i.e. its metadata files read as one
 * ordered stream of SourceRecords.
 */
import { extname } from 'node:path';
import type { InputConfig } from '../pipeline/config-types.ts';
import { INPUT_FORMATS, type InputFormat } from './formats.ts';
import type { Source } from './record.ts';
import type { TableFile } from './table.ts';
import { DelimitedFile } from './delimited.ts';
import { ImageNetSource } from './imagenet.ts';
import { JsonlFile } from './jsonl.ts';
import { ParquetFile } from './parquet.ts';
import { expandPatterns } from './paths.ts';
import { TableSource } from './table-source.ts';

export type { Source, SourceRecord } from './record.ts';
export { INPUT_FORMATS, type InputFormat } from './formats.ts';

/**
 * Builds the source for an input config. Patterns are expanded now (throws when one matches nothing);
 * the files themselves are checked by `open()`.
 */
export function createSource(input: InputConfig, opts: { dataRoot: string; projectRoot: string }): Source {
  if (!(INPUT_FORMATS as readonly string[]).includes(input.format)) {
    throw new Error(`input.format: unknown format "${input.format}" (expected one of ${INPUT_FORMATS.join(', ')})`);
  }
  const vars = { dataRoot: opts.dataRoot, projectRoot: opts.projectRoot };
  if (input.format === 'imagenet') {
    const dirs = expandPatterns(input.files, vars, 'dir');
    if (dirs.length !== 1) {
      throw new Error(`input.files: format imagenet takes one root folder, got ${dirs.length}: ${dirs.join(', ')}`);
    }
    return new ImageNetSource(dirs[0]);
  }
  if ((input.format === 'tsv' || input.format === 'csv') && input.header && input.columns !== undefined) {
    throw new Error(`input.columns is only for ${input.format} files without a header (input.header is true)`);
  }
  const files = expandPatterns(input.files, vars, 'file');
  const tables: TableFile[] = files.map((path) => {
    switch (input.format) {
      case 'parquet':
        return new ParquetFile(path);
      case 'jsonl':
        return new JsonlFile(path);
      default:
        return new DelimitedFile(path, {
          format: input.format as 'tsv' | 'csv',
          header: input.header,
          columns: input.columns,
        });
    }
  });
  return new TableSource(tables, input);
}

/** The format a path's extension suggests (for `--input FILE` style CLI flags), or undefined. */
export function formatFromPath(path: string): InputFormat | undefined {
  const ext = extname(path).toLowerCase();
  const byExt: Record<string, InputFormat> = {
    '.parquet': 'parquet',
    '.tsv': 'tsv',
    '.csv': 'csv',
    '.jsonl': 'jsonl',
    '.ndjson': 'jsonl',
  };
  return byExt[ext];
}

/**
 * An InputConfig from CLI flags: the format is taken from the first file's extension unless given,
 * url/caption columns default to img2dataset's `url` and `caption`, and a header is assumed unless
 * `columns` are given.
 */
export function inputFromFlags(flags: {
  files: string[];
  format?: InputFormat;
  urlCol?: string;
  captionCol?: string;
  columns?: string[];
  metaCols?: string[];
}): InputConfig {
  const format = flags.format ?? (flags.files[0] !== undefined ? formatFromPath(flags.files[0]) : undefined);
  if (!format) {
    throw new Error(
      `cannot tell the input format of "${flags.files[0] ?? ''}" from its name; pass --format (${INPUT_FORMATS.join(', ')})`,
    );
  }
  const config: InputConfig = {
    files: flags.files,
    format,
    header: flags.columns === undefined,
    url_col: flags.urlCol ?? 'url',
    caption_col: format === 'imagenet' ? undefined : (flags.captionCol ?? 'caption'),
  };
  if (flags.columns !== undefined) config.columns = flags.columns;
  if (flags.metaCols !== undefined) config.meta_cols = flags.metaCols;
  return config;
}
