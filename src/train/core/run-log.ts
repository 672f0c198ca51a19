// Run logs: append-only JSON lines (resume-safe) and a terminal progress line that stays short in CI logs.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../util/atomic.ts';

type Row = Record<string, unknown>;

/** Complete lines as objects; `partial` is an unterminated last line that does not parse (a crash mid-write). */
function parseLines(file: string, text: string): { rows: Row[]; lines: string[]; partial: boolean } {
  const parts = text.split('\n');
  const last = parts.pop()!; // '' when the file ends with a newline
  let partial = false;
  if (last.trim() !== '') {
    try {
      JSON.parse(last);
      parts.push(last);
    } catch {
      partial = true;
    }
  }
  const rows: Row[] = [];
  const lines: string[] = [];
  parts.forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file}:${i + 1}: not a JSON object`);
    rows.push(v as Row);
    lines.push(line);
  });
  return { rows, lines, partial };
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Every record of a JSON-lines file (a partial last line from a crash is ignored). */
export async function readJsonl(file: string): Promise<Row[]> {
  const text = await readText(file);
  if (text === null) throw new Error(`${file}: no such file`);
  return parseLines(file, text).rows;
}

export class JsonlLog {
  private fd: number | null;

  private constructor(
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /**
   * Opens for appending (creating the file). A partial last line is dropped; with truncateAfterStep, records
   * whose numeric `step` is greater are dropped too (records without a step are kept), so a resumed run
   * does not log a step twice. The cleaned file replaces the old one atomically.
   */
  static async open(file: string, opts: { truncateAfterStep?: number } = {}): Promise<JsonlLog> {
    const text = await readText(file);
    if (text !== null) {
      const { rows, lines, partial } = parseLines(file, text);
      const cut = opts.truncateAfterStep;
      const keep = lines.filter(
        (_, i) => cut === undefined || !(typeof rows[i].step === 'number' && (rows[i].step as number) > cut),
      );
      if (partial || keep.length !== lines.length || (text.length > 0 && !text.endsWith('\n'))) {
        await writeFileAtomic(file, keep.map((l) => l + '\n').join(''));
      }
    } else {
      await writeFileAtomic(file, '');
    }
    return new JsonlLog(file, openSync(file, 'a'));
  }

  /** Appends one record as a line (one write call, so a crash leaves at most a partial last line). */
  write(record: Row): void {
    if (this.fd === null) throw new Error(`JsonlLog ${this.file}: write after close`);
    writeSync(this.fd, JSON.stringify(record) + '\n');
  }

  async close(): Promise<void> {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}

/** What ProgressLine writes to (process.stderr fits). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/**
 * One status line: on a TTY it is rewritten in place; otherwise a line is printed at most every
 * minIntervalMs (default 10 s) so CI logs stay short. `now` is injectable for tests.
 */
export class ProgressLine {
  private readonly tty: boolean;
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private lastPrint = -Infinity;
  private pending: string | null = null;

  constructor(
    private readonly stream: ProgressStream,
    opts: { minIntervalMs?: number; now?: () => number } = {},
  ) {
    this.tty = stream.isTTY === true;
    this.minIntervalMs = opts.minIntervalMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  update(text: string): void {
    if (this.tty) {
      this.stream.write(`\r\x1b[2K${text}`);
      return;
    }
    const t = this.now();
    if (t - this.lastPrint >= this.minIntervalMs) {
      this.stream.write(text + '\n');
      this.lastPrint = t;
      this.pending = null;
    } else {
      this.pending = text;
    }
  }

  /** Ends the line: prints `text` (or the last update not yet shown) and a newline. */
  done(text?: string): void {
    const final = text ?? this.pending;
    if (this.tty) this.stream.write(final !== null ? `\r\x1b[2K${final}\n` : '\n');
    else if (final !== null) this.stream.write(final + '\n');
    this.pending = null;
  }
}
