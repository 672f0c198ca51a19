/** Rows under way in one process (a slot taken, outcome not yet known): how many, and how long the oldest has been. */
export class RowsInFlight {
  private next = 0;
  /** start time per row, in start order: the first entry is the oldest still under way */
  private readonly started = new Map<number, number>();

  /** Marks a row as under way; call the returned function when it is done. */
  start(now = Date.now()): () => void {
    const id = this.next++;
    this.started.set(id, now);
    return () => void this.started.delete(id);
  }

  snapshot(now = Date.now()): { rows: number; oldest_ms: number } {
    const first = this.started.values().next();
    return { rows: this.started.size, oldest_ms: first.done ? 0 : now - first.value };
  }
}
