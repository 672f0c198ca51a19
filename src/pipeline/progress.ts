/**
 * Fetch progress: a live bar on a terminal (rows/s, successes/s, success rate, ETA), a plain line every few
 * seconds otherwise, or JSON lines with `--log-format json`. Always to stderr, so stdout stays for results.
 */
import type { SampleStatus } from '../shards/outcome.ts';
import type { CutOff } from '../fetch/origin-health.ts';
import { formatDuration } from '../util/duration.ts';

export { formatDuration };

/** What one fetch process has under way right now (a worker sends it once a second). */
export interface LiveStatus {
  in_flight: number;
  waiting_on_slow_origins: number;
  /** age of the oldest row under way, ms (0 when none) */
  oldest_ms: number;
  cut_offs: CutOff[];
}

/** How fetch reports progress (`fetch --log-format`): the one list. */
export const LOG_FORMATS = ['auto', 'plain', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export class FetchProgress {
  private rows = 0;
  private ok = 0;
  private shardsDone = 0;
  private readonly started = Date.now();
  private readonly mode: 'tty' | 'plain' | 'json';
  private timer: NodeJS.Timeout | undefined;
  private readonly lives = new Map<string, LiveStatus>();

  constructor(
    private readonly totalRows: number,
    private readonly totalShards: number,
    format: LogFormat,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly plainEveryMs = 5000,
  ) {
    this.mode = format === 'json' ? 'json' : format === 'plain' || !out.isTTY ? 'plain' : 'tty';
    // On a timer too, not only when rows finish: a stall (no row finishing) must still show.
    const every = this.mode === 'tty' ? 250 : plainEveryMs;
    if (every > 0) this.timer = setInterval(() => this.print(), every).unref();
  }

  row(status: SampleStatus, count = 1): void {
    this.rows += count;
    if (status === 'ok') this.ok += count;
    if (this.mode !== 'tty' && this.plainEveryMs <= 0) this.print();
  }

  /** The latest live status of one process (`from`: its pid, or 'main'). */
  live(from: string, status: LiveStatus): void {
    this.lives.set(from, status);
  }

  /** Origins cut off in any process: the first cut per origin, rows skipped summed. */
  cutOrigins(): CutOff[] {
    const by = new Map<string, CutOff>();
    for (const l of this.lives.values()) {
      for (const c of l.cut_offs) {
        const seen = by.get(c.origin);
        if (!seen) by.set(c.origin, { ...c });
        else {
          seen.rows_skipped += c.rows_skipped;
          if (c.at < seen.at) seen.at = c.at;
          seen.still_cut ||= c.still_cut;
        }
      }
    }
    return [...by.values()].sort((a, b) => a.at.localeCompare(b.at) || a.origin.localeCompare(b.origin));
  }

  private liveTotals() {
    let inFlight = 0;
    let waiting = 0;
    let oldest = 0;
    for (const l of this.lives.values()) {
      inFlight += l.in_flight;
      waiting += l.waiting_on_slow_origins;
      oldest = Math.max(oldest, l.oldest_ms);
    }
    return { inFlight, waiting, oldestS: oldest / 1000, cut: this.cutOrigins().filter((c) => c.still_cut).length };
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
    const r = this.rates();
    const live = this.liveTotals();
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
        in_flight: live.inFlight,
        waiting_on_slow_origins: live.waiting,
        oldest_row_age_s: round(live.oldestS, 1),
        origins_cut_off: live.cut,
      });
      return;
    }
    const frac = this.totalRows ? Math.min(1, this.rows / this.totalRows) : 1;
    const line =
      `${bar(frac)} ${this.rows}/${this.totalRows} rows, shards ${this.shardsDone}/${this.totalShards} | ` +
      `${r.rowsPerS.toFixed(1)} rows/s, ${r.okPerS.toFixed(1)} ok/s, success ${(100 * r.successRate).toFixed(1)}% | ` +
      `ETA ${r.etaS === null ? '?' : formatDuration(r.etaS)} | ` +
      `in flight ${live.inFlight}, waiting on slow origins ${live.waiting}, oldest ${live.oldestS.toFixed(1)}s` +
      (live.cut ? `, ${live.cut} origin(s) cut off` : '');
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

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
