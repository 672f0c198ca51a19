/**
 * `optout import <file>`: one URL (or 64-hex image sha256) per line, or CSV / JSONL with a `url` and/or `sha256`
 * column (parsing: import-lines.ts). A malformed line is reported with its number and skipped; the rest is
 * imported. URLs go through the bulk loader (staged, then merged in key order: see UrlBulkLoader); a big input is
 * parsed and hashed in a worker thread while this thread writes to SQLite.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from '../util/ts-worker.ts';
import {
  ImportHeaderError,
  LineProcessor,
  type ImportFormat,
  type LineError,
  type ParsedBatch,
} from './import-lines.ts';
import type { FromImportWorker } from './import-worker.ts';
import type { OptoutStore } from './store.ts';

export { IMPORT_FORMATS, type ImportFormat, type LineError } from './import-lines.ts';

export interface ImportReport {
  source: string;
  format: ImportFormat;
  lines: number;
  urls: { added: number; already: number };
  images: { added: number; already: number };
  /** The first MAX_ERRORS_KEPT malformed lines; `errorCount` counts them all. */
  errors: LineError[];
  errorCount: number;
}

export const MAX_ERRORS_KEPT = 1000;
/** Inputs at least this big are parsed in a worker thread (starting one costs about a second). */
export const PARALLEL_FROM_BYTES = 32 << 20;
const BLOCK_CHARS = 1 << 20;
const MAX_IN_FLIGHT = 4;

export interface ImportOptions {
  format?: ImportFormat;
  /** Parse in a worker thread (default: for files of PARALLEL_FROM_BYTES or more). */
  parallel?: boolean;
  /** Characters per block of lines (tests use small blocks to cross block edges). */
  blockChars?: number;
}

export function formatFromName(file: string): ImportFormat | undefined {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  return undefined;
}

export async function importOptoutFile(
  store: OptoutStore,
  file: string,
  opts: ImportOptions = {},
): Promise<ImportReport> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`optout import ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  if (!st.isFile())
    throw new Error(`optout import ${file}: not a file (give a text, CSV or JSONL file of URLs or sha256s)`);
  const size = st.size;
  const stream = createReadStream(file);
  return importOptouts(
    store,
    stream,
    { ...opts, format: opts.format ?? formatFromName(file), parallel: opts.parallel ?? size >= PARALLEL_FROM_BYTES },
    file,
  );
}

/** Blocks of whole lines (without the line ending between blocks), about BLOCK_CHARS each. */
async function* lineBlocks(stream: Readable, blockChars: number): AsyncGenerator<string> {
  stream.setEncoding('utf8');
  let buf = '';
  for await (const chunk of stream as AsyncIterable<string>) {
    buf += chunk;
    if (buf.length < blockChars) continue;
    const cut = buf.lastIndexOf('\n');
    if (cut < 0) continue;
    yield buf.slice(0, cut);
    buf = buf.slice(cut + 1);
  }
  if (buf) yield buf.endsWith('\n') ? buf.slice(0, -1) : buf;
}

/** Parses blocks in a worker thread, in order, at most MAX_IN_FLIGHT ahead. */
async function* parsedInWorker(
  blocks: AsyncIterable<string>,
  format: ImportFormat | undefined,
  source: string,
): AsyncGenerator<ParsedBatch> {
  const worker: Worker = startTsWorker(new URL('./import-worker.ts', import.meta.url), { format, source });
  const waiting: Array<{ resolve: (b: ParsedBatch) => void; reject: (e: Error) => void }> = [];
  const results: Array<Promise<ParsedBatch>> = [];
  let failure: Error | undefined;
  const failAll = (e: Error) => {
    failure ??= e;
    for (const w of waiting.splice(0)) w.reject(e);
  };
  worker.on('message', (m: FromImportWorker) => {
    if ('fatal' in m) return failAll(new ImportHeaderError(m.fatal));
    waiting.shift()?.resolve(m.batch);
  });
  worker.on('error', failAll);
  worker.on('exit', () => failAll(new Error('the import worker thread stopped')));
  const send = (text: string) => {
    if (failure) throw failure;
    results.push(new Promise<ParsedBatch>((resolve, reject) => waiting.push({ resolve, reject })));
    worker.postMessage({ text });
  };
  try {
    for await (const text of blocks) {
      send(text);
      while (results.length >= MAX_IN_FLIGHT) yield await results.shift()!;
    }
    while (results.length) yield await results.shift()!;
  } finally {
    for (const r of results) r.catch(() => {}); // abandoned on error
    await worker.terminate();
  }
}

async function* parsedHere(
  blocks: AsyncIterable<string>,
  format: ImportFormat | undefined,
  source: string,
): AsyncGenerator<ParsedBatch> {
  const processor = new LineProcessor(format, source);
  for await (const text of blocks) yield processor.process(text.split('\n'));
}

export async function importOptouts(
  store: OptoutStore,
  stream: Readable,
  opts: ImportOptions = {},
  source = 'input',
): Promise<ImportReport> {
  const added = new Date().toISOString();
  const report: ImportReport = {
    source,
    format: opts.format ?? 'lines',
    lines: 0,
    urls: { added: 0, already: 0 },
    images: { added: 0, already: 0 },
    errors: [],
    errorCount: 0,
  };
  const bulk = store.bulkUrls(added);
  const batches = (opts.parallel ? parsedInWorker : parsedHere)(
    lineBlocks(stream, opts.blockChars ?? BLOCK_CHARS),
    opts.format,
    source,
  );
  try {
    for await (const b of batches) {
      report.format = b.format;
      for (const e of b.errors) {
        if (report.errors.length < MAX_ERRORS_KEPT) report.errors.push(e);
      }
      report.errorCount += b.errors.length;
      report.lines += b.lines;
      const hashes = Buffer.from(b.hashes.buffer, b.hashes.byteOffset, b.hashes.byteLength);
      for (let i = 0; i < b.urls.length; i++) bulk.add({ hash: hashes.subarray(8 * i, 8 * i + 8), url: b.urls[i] });
      if (b.images.length) {
        const images = Buffer.from(b.images.buffer, b.images.byteOffset, b.images.byteLength);
        const i = store.insertImages(
          Array.from({ length: images.length / 32 }, (_, k) => images.subarray(32 * k, 32 * k + 32)),
          added,
        );
        report.images.added += i.added;
        report.images.already += i.already;
      }
    }
  } catch (err) {
    bulk.drop();
    throw err;
  }
  report.urls = bulk.finish();
  return report;
}
