/**
 * Per-origin health for one downloader (one process): how many requests an origin gets at once, a pause after it
 * answers 429 / 503 with Retry-After, and the cut-off: after `cutoffAfter` consecutive timeouts or refused
 * connections the origin's further rows fail at once (`host_unresponsive`, no request) until `cooldownMs` has
 * passed; then one request probes it, and an answer of any kind lets the rest through again.
 *
 * The decisions depend on timing (which requests finished first), so rows that end `host_unresponsive` are the
 * part of a fetch that a rerun may not reproduce; `fetch --retry-status host_unresponsive` retries just those.
 */

export interface OriginHealthOptions {
  /** Consecutive timeouts or refusals that cut an origin off; 0 = never. */
  cutoffAfter: number;
  /** How long a cut-off origin gets no request before one probe. */
  cooldownMs: number;
  /** Requests at once to one origin. */
  perOrigin: number;
  now?: () => number;
}

/** How a request to the origin ended, for its health. */
export type Outcome = 'answered' | 'timeout' | 'refused';

export interface CutOff {
  origin: string;
  /** when the origin was (last) cut off, ISO time */
  at: string;
  /** consecutive timeouts or refusals that decided it */
  after: number;
  /** rows failed without a request because of it (this process) */
  rows_skipped: number;
  /** false once a probe after the cool-down got an answer */
  still_cut: boolean;
}

export interface Ticket {
  ok: true;
  /** Ends the request: its outcome, and whether the origin had already timed out within the cool-down before it. */
  leave(outcome: Outcome): { alreadyTimingOut: boolean };
}
export interface Refused {
  ok: false;
  cut: CutOff;
  /** the message recorded in the row's `error` */
  error: string;
}

class OriginState {
  active = 0;
  readonly waiters: Array<() => void> = [];
  consecutive = 0;
  lastTimeoutAt = -Infinity;
  cutAt: number | null = null;
  probing = false;
  pausedUntil = 0;
  sleepers = 0;
  cut: CutOff | undefined;
}

export class OriginHealth {
  private readonly origins = new Map<string, OriginState>();
  private readonly now: () => number;

  constructor(private readonly o: OriginHealthOptions) {
    this.now = o.now ?? Date.now;
  }

  private state(origin: string): OriginState {
    let s = this.origins.get(origin);
    if (!s) this.origins.set(origin, (s = new OriginState()));
    return s;
  }

  /**
   * The origin's turn now, a refusal (cut off), or null when the request must wait (cap or 429 pause).
   * `retry`: a row's later attempt; refusing it does not count as a row skipped (the row keeps its last failure).
   */
  tryEnter(origin: string, retry = false): Ticket | Refused | null {
    const s = this.state(origin);
    if (s.cutAt !== null) {
      if (this.now() - s.cutAt >= this.o.cooldownMs && !s.probing) {
        s.probing = true; // this request is the probe; the others keep failing fast until it answers
        s.active++;
        return this.ticket(origin, s);
      }
      if (!retry) s.cut!.rows_skipped++;
      return { ok: false, cut: s.cut!, error: this.message(origin, s.cut!) };
    }
    if (s.pausedUntil > this.now() || s.active >= this.o.perOrigin) return null;
    s.active++;
    return this.ticket(origin, s);
  }

  /** Waits for the origin's turn (cap, 429 pause), or refuses at once when it is cut off. */
  async enter(origin: string, retry = false): Promise<Ticket | Refused> {
    const s = this.state(origin);
    for (let first = true; ; first = false) {
      const now = this.tryEnter(origin, retry);
      if (now) return now;
      const wait = s.pausedUntil - this.now();
      if (wait > 0) {
        s.sleepers++;
        await new Promise((resolve) => setTimeout(resolve, wait));
        s.sleepers--;
      } else {
        // behind the cap: wait for a request of this origin to end (back at the front when woken but beaten)
        await new Promise<void>((resolve) => (first ? s.waiters.push(resolve) : s.waiters.unshift(resolve)));
      }
    }
  }

  private ticket(origin: string, s: OriginState): Ticket {
    let left = false;
    return {
      ok: true,
      leave: (outcome) => {
        if (left) return { alreadyTimingOut: false };
        left = true;
        s.active--;
        const now = this.now();
        const alreadyTimingOut = now - s.lastTimeoutAt < this.o.cooldownMs;
        if (outcome === 'answered') {
          s.consecutive = 0;
          if (s.probing) {
            s.probing = false;
            s.cutAt = null;
            s.cut!.still_cut = false;
          }
        } else {
          s.consecutive++;
          if (outcome === 'timeout') s.lastTimeoutAt = now;
          const cutNow =
            s.probing || (this.o.cutoffAfter > 0 && s.cutAt === null && s.consecutive >= this.o.cutoffAfter);
          if (cutNow) {
            s.probing = false;
            s.cutAt = now;
            const skipped = s.cut?.rows_skipped ?? 0;
            s.cut = {
              origin,
              at: new Date(now).toISOString(),
              after: s.consecutive,
              rows_skipped: skipped,
              still_cut: true,
            };
            // everyone queued for this origin now fails fast
            for (const w of s.waiters.splice(0)) w();
          }
        }
        s.waiters.shift()?.();
        return { alreadyTimingOut };
      },
    };
  }

  /** Holds the origin's new requests back for `ms` (429 / 503 Retry-After, or back-off). */
  pause(origin: string, ms: number): void {
    const s = this.state(origin);
    s.pausedUntil = Math.max(s.pausedUntil, this.now() + ms);
  }

  /** Requests waiting for their origin's turn (cap or pause). */
  get waiting(): number {
    let n = 0;
    for (const s of this.origins.values()) n += s.waiters.length + s.sleepers;
    return n;
  }

  /** Every origin cut off so far in this process, in the order of their first cut. */
  cutOffs(): CutOff[] {
    return [...this.origins.values()].flatMap((s) => (s.cut ? [{ ...s.cut }] : []));
  }

  private message(origin: string, cut: CutOff): string {
    return (
      `not requested: origin ${origin} was cut off at ${cut.at} after ${cut.after} consecutive timeouts or refused connections ` +
      `(retry later: muse-data fetch --retry-status host_unresponsive)`
    );
  }
}
