/**
 * How long the oldest data that is received but not yet durable has been waiting. `sample` is called often (a timer
 * and every scrape) with the received and durable offsets; each new received offset is stamped with the time it was
 * first seen, and stamps at or below the durable offset are dropped. So the lag in seconds is at most one sampling
 * period too low, never too high, and it is 0 exactly when everything received is durable.
 */
export class LagTracker {
  /** (offset, first seen at) pairs in increasing offset order, all above the durable offset. */
  private marks: { offset: number; at: number }[] = [];

  sample(received: number | null, durable: number | null, now: number = Date.now()): void {
    const d = durable ?? -1;
    let drop = 0;
    while (drop < this.marks.length && this.marks[drop]!.offset <= d) drop++;
    if (drop > 0) this.marks.splice(0, drop);
    if (received === null || received <= d) {
      // Nothing outstanding (or a new history whose offsets restarted lower): nothing can be older.
      if (received !== null && received <= d) this.marks = [];
      return;
    }
    const last = this.marks[this.marks.length - 1];
    if (!last || received > last.offset) this.marks.push({ offset: received, at: now });
    else if (received < last.offset) {
      // Offsets went backwards (a full resync onto another history): start over from this sample.
      this.marks = [{ offset: received, at: now }];
    }
    // Bounded: at one sample per 200 ms this is hours of stalled sinks; merging keeps the oldest stamp.
    if (this.marks.length > 10_000) this.marks.splice(1, this.marks.length - 5_000);
  }

  /** Seconds since the oldest not-yet-durable offset was first seen; 0 when everything is durable. */
  seconds(now: number = Date.now()): number {
    const first = this.marks[0];
    return first ? Math.max(0, (now - first.at) / 1000) : 0;
  }
}
