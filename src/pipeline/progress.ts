/**
 * Fetch progress: a live bar on a terminal (rows/s, successes/s, success rate, ETA), a plain line every few
 * seconds otherwise, or JSON lines with `--log-format json`. Always to stderr, so stdout stays for results.
 */
import type { SampleStatus } from '../shards/outcome.ts';

export type LogFormat = 'auto' | 'plain' | 'json';

export class FetchProgress {
  private rows = 0;
  private ok = 0;
  private shardsDone = 0;
  private readonly started = Date.now();
  private lastPrint = Date.now();
  private readonly mode: 'tty' | 'plain' | 'json';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly totalRows: number,
    private readonly totalShards: number,
    format: LogFormat,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly plainEveryMs = 5000,
  ) {
    this.mode = format === 'json' ? 'json' : format === 'plain' || !out.isTTY ? 'plain' : 'tty';
    if (this.mode === 'tty') this.timer = setInterval(() => this.print(), 250).unref();
  }

  row(status: SampleStatus, count = 1): void {
    this.rows += count;
    if (status === 'ok') this.ok += count;
    if (this.mode !== 'tty' && Date.now() - this.lastPrint >= this.plainEveryMs) this.print();
  }

  shardDone(shard: number, elapsedS: number): void {
    this.shardsDone++;
    if (this.mode === 'json') this.emit({ event: 'shard_done', shard, duration_s: elapsedS });
  }

  message(text: string): void {
    if (this.mode === 'json') this.emit({ event: 'message', text });
    else this.out.write(`${this.mode === 'tty' ? '\r\x1b[2K' : ''}${text}\n`);
  }

  private rates() {
    const elapsed = (Date.now() - this.started) / 1000;
    const rowsPerS = this.rows / Math.max(elapsed, 1e-3);
    const okPerS = this.ok / Math.max(elapsed, 1e-3);
    // Never below 0: rows counted twice (a retried shard whose statuses differ) must not give a negative ETA.
    const remaining = Math.max(0, this.totalRows - this.rows);
    const etaS = rowsPerS > 0 ? remaining / rowsPerS : null;
    return { elapsed, rowsPerS, okPerS, successRate: this.rows ? this.ok / this.rows : 0, etaS };
  }

  private print(): void {
    this.lastPrint = Date.now();
    const r = this.rates();
    if (this.mode === 'json') {
      this.emit({
        event: 'progress',
        rows: this.rows,
        total_rows: this.totalRows,
        successes: this.ok,
        shards_done: this.shardsDone,
        total_shards: this.totalShards,
        rows_per_s: round(r.rowsPerS),
        successes_per_s: round(r.okPerS),
        success_rate: round(r.successRate, 4),
        eta_s: r.etaS === null ? null : Math.round(r.etaS),
      });
      return;
    }
    const frac = this.totalRows ? Math.min(1, this.rows / this.totalRows) : 1;
    const line =
      `${bar(frac)} ${this.rows}/${this.totalRows} rows, shards ${this.shardsDone}/${this.totalShards} | ` +
      `${r.rowsPerS.toFixed(1)} rows/s, ${r.okPerS.toFixed(1)} ok/s, success ${(100 * r.successRate).toFixed(1)}% | ` +
      `ETA ${r.etaS === null ? '?' : formatDuration(r.etaS)}`;
    this.out.write(this.mode === 'tty' ? `\r\x1b[2K${line}` : `${line}\n`);
  }

  finish(): { elapsed_s: number; rows: number; successes: number } {
    if (this.timer) clearInterval(this.timer);
    this.print();
    if (this.mode === 'tty') this.out.write('\n');
    const r = this.rates();
    return { elapsed_s: round(r.elapsed), rows: this.rows, successes: this.ok };
  }

  private emit(obj: Record<string, unknown>): void {
    this.out.write(JSON.stringify({ time: new Date().toISOString(), ...obj }) + '\n');
  }
}

function bar(frac: number, width = 24): string {
  const filled = Math.round(Math.min(1, Math.max(0, frac)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(100 * frac).toFixed(0).padStart(3)}%`;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
