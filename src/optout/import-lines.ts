/**
 * Parsing of `optout import` input, line by line, into hashed entries: one URL (or 64-hex image sha256) per
 * line, CSV with a `url` and/or `sha256` column, or JSONL objects with those fields. No database here, so the
 * same code runs in the importing thread or in a worker thread (src/optout/import-worker.ts).
 */
import { parseCsvRecord } from '../sources/csv.ts';
import { SHA256_HEX, parseSha256, prepareUrl } from './store.ts';

export type ImportFormat = 'lines' | 'csv' | 'jsonl';
export const IMPORT_FORMATS: readonly ImportFormat[] = ['lines', 'csv', 'jsonl'];

export interface LineError {
  line: number;
  message: string;
}

/** What a run of lines gave: URL hashes (8 bytes each) with their URLs, image hashes (32 bytes each), errors. */
export interface ParsedBatch {
  hashes: Uint8Array;
  urls: string[];
  images: Uint8Array;
  errors: LineError[];
  lines: number;
  format: ImportFormat;
}

/** A file-level problem (e.g. a CSV header without the columns): the import stops. */
export class ImportHeaderError extends Error {}

type Entry = { url?: string; sha256?: string };
type LineParser = (line: string) => Entry | null; // null: nothing on this line

function linesParser(): LineParser {
  return (line) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return null;
    return SHA256_HEX.test(t) ? { sha256: t } : { url: t };
  };
}

function jsonlParser(): LineParser {
  return (line) => {
    if (!line.trim()) return null;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (err) {
      throw new Error(`not JSON: ${(err as Error).message}`);
    }
    if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error('not a JSON object');
    const { url, sha256 } = o as Record<string, unknown>;
    if (url != null && typeof url !== 'string') throw new Error(`"url" is not a string`);
    if (sha256 != null && typeof sha256 !== 'string') throw new Error(`"sha256" is not a string`);
    if (!url && !sha256) throw new Error('no "url" or "sha256" field');
    return { url: url || undefined, sha256: sha256 || undefined };
  };
}

/** CSV: the header names the columns (`url`, `sha256`, case-insensitive); other columns are ignored. */
function csvParser(source: string): LineParser {
  let urlCol = -1;
  let shaCol = -1;
  let header = true;
  return (line) => {
    if (!line.trim()) return null;
    const parsed = parseCsvRecord(line);
    if ('error' in parsed) throw new Error(`CSV: ${parsed.error} (column ${parsed.column + 1})`);
    const f = parsed.fields;
    if (header) {
      const names = f.map((c) => c.trim().toLowerCase());
      urlCol = names.indexOf('url');
      shaCol = names.indexOf('sha256');
      if (urlCol < 0 && shaCol < 0)
        throw new ImportHeaderError(`${source}: the CSV header (${f.join(',')}) has no 'url' or 'sha256' column`);
      header = false;
      return null;
    }
    const url = urlCol >= 0 ? f[urlCol]?.trim() : undefined;
    const sha256 = shaCol >= 0 ? f[shaCol]?.trim() : undefined;
    if (!url && !sha256) throw new Error('empty url and sha256');
    return { url: url || undefined, sha256: sha256 || undefined };
  };
}

function parserFor(format: ImportFormat, source: string): LineParser {
  if (format === 'csv') return csvParser(source);
  if (format === 'jsonl') return jsonlParser();
  return linesParser();
}

/** Turns lines (in file order, across calls) into ParsedBatches; numbers lines from 1. */
export class LineProcessor {
  private line = 0;
  private parse: LineParser | undefined;
  format: ImportFormat;

  constructor(
    format: ImportFormat | undefined,
    private readonly source: string,
  ) {
    this.format = format ?? 'lines';
    if (format) this.parse = parserFor(format, source);
  }

  process(lines: readonly string[]): ParsedBatch {
    const hashes: Buffer[] = [];
    const urls: string[] = [];
    const images: Buffer[] = [];
    const errors: LineError[] = [];
    for (let text of lines) {
      const n = ++this.line;
      if (n === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.endsWith('\r')) text = text.slice(0, -1);
      if (!this.parse) {
        // No format given: the first non-empty line decides (a JSON object, else one entry per line).
        if (!text.trim()) continue;
        this.format = text.trimStart().startsWith('{') ? 'jsonl' : 'lines';
        this.parse = parserFor(this.format, this.source);
      }
      try {
        const e = this.parse(text);
        if (!e) continue;
        // Validate both before keeping either, so a line is imported whole or reported whole.
        const u = e.url !== undefined ? prepareUrl(e.url) : undefined;
        const s = e.sha256 !== undefined ? parseSha256(e.sha256) : undefined;
        if (u) {
          hashes.push(u.hash);
          urls.push(u.url);
        }
        if (s) images.push(s);
      } catch (err) {
        if (err instanceof ImportHeaderError) throw err;
        errors.push({ line: n, message: (err as Error).message });
      }
    }
    return {
      hashes: packed(hashes, 8),
      urls,
      images: packed(images, 32),
      errors,
      lines: lines.length,
      format: this.format,
    };
  }
}

/** Fixed-size hashes in one Uint8Array with its own ArrayBuffer (so it can be transferred to another thread). */
function packed(items: Buffer[], size: number): Uint8Array {
  const out = new Uint8Array(items.length * size);
  for (let i = 0; i < items.length; i++) out.set(items[i], i * size);
  return out;
}
