/** What a progress line shows: counts so far, and the totals when known (for the percentage and the ETA). */
export interface ProgressSample {
  keys: number;
  /** Bytes read so far, or null where bytes mean nothing (verify counts keys). */
  bytes: number | null;
  totalBytes: number | null;
  totalKeys?: number | null;
  /** When the work started (ms since the epoch). */
  startedAt: number;
}

const MB = 1024 * 1024;

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${Math.ceil(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

const pct = (done: number, total: number) => `${Math.min(100, Math.floor((done / total) * 100))}%`;

/**
 * One line such as `snapshot  1.25M keys  48.0/87.1 MB (55%)  31.2 MB/s  812k keys/s  ETA 2s`; the ETA comes from
 * the byte rate when the total size is known, else from the key rate when the key count is.
 */
export function formatProgress(label: string, p: ProgressSample, now: number = Date.now()): string {
  const secs = Math.max(0.001, (now - p.startedAt) / 1000);
  const keyRate = p.keys / secs;
  const totalKeys = p.totalKeys ?? null;
  const parts = [label];
  parts.push(
    totalKeys !== null && totalKeys > 0
      ? `${count(p.keys)}/${count(totalKeys)} keys (${pct(p.keys, totalKeys)})`
      : `${count(p.keys)} keys`,
  );
  let eta: number | null = null;
  if (p.bytes !== null) {
    const rate = p.bytes / secs;
    if (p.totalBytes !== null && p.totalBytes > 0) {
      parts.push(
        `${(p.bytes / MB).toFixed(1)}/${(p.totalBytes / MB).toFixed(1)} MB (${pct(p.bytes, p.totalBytes)})`,
      );
      if (rate > 0) eta = Math.max(0, p.totalBytes - p.bytes) / rate;
    } else parts.push(`${(p.bytes / MB).toFixed(1)} MB`);
    parts.push(`${(rate / MB).toFixed(1)} MB/s`);
  }
  parts.push(`${count(Math.round(keyRate))} keys/s`);
  if (eta === null && totalKeys !== null && totalKeys > 0 && keyRate > 0)
    eta = Math.max(0, totalKeys - p.keys) / keyRate;
  parts.push(eta !== null ? `ETA ${duration(eta)}` : `${duration(secs)} elapsed`);
  return parts.join('  ');
}

/** The progress line on screen, if any: log lines erase it before they are written. */
let active: ProgressLine | null = null;

/** Called by the pretty logger before each line. */
export function beforeLogLine(): void {
  active?.clear();
}

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

/**
 * A live progress line on a terminal (stderr): rewritten in place every `intervalMs` while `sample` returns work in
 * progress (null: nothing to show now), erased when done. On anything but a TTY it writes nothing at all, so logs
 * shipped from a pipe or a container never fill with carriage returns.
 */
export class ProgressLine {
  private timer: NodeJS.Timeout | null = null;
  private shown = false;

  constructor(
    private readonly label: string,
    private readonly sample: () => ProgressSample | null,
    private readonly out: ProgressStream = process.stderr,
    private readonly intervalMs = 250,
  ) {}

  get enabled(): boolean {
    return this.out.isTTY === true;
  }

  start(): this {
    if (!this.enabled || this.timer) return this;
    this.timer = setInterval(() => this.render(), this.intervalMs);
    this.timer.unref();
    active = this;
    return this;
  }

  /** Draws the line now (or erases it when there is nothing in progress). */
  render(): void {
    if (!this.enabled) return;
    const p = this.sample();
    if (!p) {
      this.clear();
      return;
    }
    const width = Math.max(20, (this.out.columns || 120) - 1);
    this.out.write(`\r\x1b[2K${formatProgress(this.label, p).slice(0, width)}`);
    this.shown = true;
  }

  /** Erases the line, so the next log line starts on a clean row. */
  clear(): void {
    if (!this.shown) return;
    this.out.write('\r\x1b[2K');
    this.shown = false;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clear();
    if (active === this) active = null;
  }
}
