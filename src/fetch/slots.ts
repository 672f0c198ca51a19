/**
 * Counted slots (a semaphore) whose holder can lend its slot out while it only waits: a row of a shard holds one
 * slot while it downloads and processes its image, and gives it back while it sleeps before a retry, queues behind
 * a busy or rate-limited origin, or waits on a slow server (parked). So a hung request holds a socket, not a slot,
 * and the other rows keep the CPU busy. Parked holders are capped, which bounds the sockets left waiting.
 * A lease is used by one row at a time: its calls are sequential, never concurrent.
 */

export interface Lease {
  /** Lends the slot out (no-op when not held). */
  lend(): void;
  /** Takes a slot back (waits for one; no-op when held). */
  take(): Promise<void>;
  /** Lends the slot out as a parked waiter, if fewer than the cap are parked; false (slot kept) otherwise. */
  park(): boolean;
  /** Ends the lease: the slot (if held) goes back for good. */
  end(): void;
}

export class Slots {
  private used = 0;
  private parkedNow = 0;
  /** leases taking their slot back (rows already under way) go before new leases */
  private readonly resuming: Array<() => void> = [];
  private readonly fresh: Array<() => void> = [];

  /** `capacity` slots; at most `maxParked` leases parked at once. */
  constructor(
    readonly capacity: number,
    readonly maxParked: number,
  ) {
    if (!(capacity >= 1)) throw new Error(`slots: capacity must be ≥ 1, got ${capacity}`);
  }

  /** Leases waiting for a slot. */
  get queued(): number {
    return this.resuming.length + this.fresh.length;
  }

  /** Leases parked on a slow server right now. */
  get parked(): number {
    return this.parkedNow;
  }

  get inUse(): number {
    return this.used;
  }

  private async acquire(resuming: boolean): Promise<void> {
    if (this.used < this.capacity) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => (resuming ? this.resuming : this.fresh).push(resolve));
  }

  private release(): void {
    const next = this.resuming.shift() ?? this.fresh.shift();
    if (next)
      next(); // the slot passes straight to the next waiter
    else this.used--;
  }

  /** A lease holding one slot. */
  async lease(): Promise<Lease> {
    await this.acquire(false);
    let held = true;
    let parked = false;
    const unpark = () => {
      if (parked) {
        parked = false;
        this.parkedNow--;
      }
    };
    return {
      lend: () => {
        if (!held) return;
        held = false;
        this.release();
      },
      take: async () => {
        unpark();
        if (held) return;
        await this.acquire(true);
        held = true;
      },
      park: () => {
        if (!held || this.parkedNow >= this.maxParked) return false;
        parked = true;
        this.parkedNow++;
        held = false;
        this.release();
        return true;
      },
      end: () => {
        unpark();
        if (held) {
          held = false;
          this.release();
        }
      },
    };
  }
}
