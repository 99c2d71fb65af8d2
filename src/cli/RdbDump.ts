import { createReadStream, statSync } from 'node:fs';
import { compileGlob } from '../commands/glob.js';
import { NdjsonWriter } from '../events/NdjsonEncoder.js';
import { ProgressLine } from '../observe/progress.js';
import type { ByteView } from '../rdb/Cursor.js';
import { Crc64Thread } from '../rdb/crc64Thread.js';
import { RdbFormatError } from '../rdb/RdbFormatError.js';
import { RdbParser } from '../rdb/RdbParser.js';
import type { RdbKeyRecord, RdbPackedKey, RdbStringKey, RdbSummary } from '../rdb/records.js';
import { snapshotBeginEvent, snapshotEndEvent, snapshotEvent } from '../rdb/snapshotEvent.js';
import { writePackedSnapshot } from '../rdb/snapshotLine.js';

/** What `redtail rdb` was asked to do (rdbCommand.ts parses it). */
export interface RdbDumpArgs {
  file: string;
  db: number | null;
  /** A Redis glob (KEYS/SCAN MATCH semantics, on the key's bytes), or null. */
  pattern: string | null;
  type: string | null;
  stats: boolean;
  deep: boolean;
  ignoreChecksum: boolean;
  markers: boolean;
  streamThreshold: number | undefined;
}

/** Files from this size on have their CRC64 computed on a second thread (Crc64Thread). */
const CRC_THREAD_MIN_BYTES = 4 << 20;

/** Lines are written in pieces of about this size. */
const FLUSH_BYTES = 1 << 20;

/** 256 KB reads: 1 MB chunks, freed only when the views into them die, held peak RSS near 250 MB (now ~165). */
const READ_BYTES = 256 * 1024;

interface Tally {
  keys: number;
  bytes: number;
}

function tally(map: Map<string, Tally>, name: string, bytes: number): void {
  const t = map.get(name);
  if (t) {
    t.keys++;
    t.bytes += bytes;
  } else map.set(name, { keys: 1, bytes });
}

/**
 * One run of `redtail rdb`: reads the file, prints its keys as NDJSON snapshot events (or, with --stats, counts
 * them) and resolves to the exit code. The parser's three key callbacks land in the three `on*` methods; string keys
 * and packed blobs (most of a typical snapshot) go from the parser's views straight into the line, with no Buffer,
 * record or event object per key.
 */
export class RdbDump {
  private w = new NdjsonWriter(FLUSH_BYTES * 2);
  /** The last write was refused (backpressure): wait for 'drain' once per input chunk. */
  private full = false;
  /** The reader went away (EPIPE): like other Unix filters, a normal end. */
  private closed = false;
  private seq = 0;
  private replid = '';
  private replOffset = 0;
  private begun = false;
  private selected = 0;
  private keysRead = 0;
  private bytesRead = 0;
  private readonly byType = new Map<string, Tally>();
  private readonly byEncoding = new Map<string, Tally>();
  private readonly keyMatches: ((key: Buffer) => boolean) | null;

  constructor(
    private readonly args: RdbDumpArgs,
    private readonly out: NodeJS.WriteStream = process.stdout,
  ) {
    this.keyMatches = args.pattern === null ? null : compileGlob(args.pattern);
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.closed = true;
    });
  }

  async run(): Promise<number> {
    const started = process.hrtime.bigint();
    // Big files get their CRC64 computed on a second thread; small ones are not worth starting it.
    const crcThread = (fileSize(this.args.file) ?? 0) >= CRC_THREAD_MIN_BYTES ? Crc64Thread.start() : null;
    const parser = this.parser(crcThread === null);
    const progress = this.progress().start();
    let summary: RdbSummary | null;
    try {
      summary = await this.read(parser, crcThread);
    } catch (err) {
      crcThread?.stop();
      progress.stop();
      return this.failed(err);
    }
    progress.stop();
    if (summary === null) return 0;
    if (this.args.stats) {
      this.out.write(`${JSON.stringify(this.stats(summary, started), null, 2)}\n`);
      return 0;
    }
    this.begin(summary.version);
    if (this.args.markers)
      this.w.event(
        snapshotEndEvent(summary, { replid: this.replid, offset: this.replOffset, seq: this.seq++ }),
      );
    if (this.w.length > 0 && !this.closed && !this.flush()) await drained(this.out);
    return 0;
  }

  private parser(checksum: boolean): RdbParser {
    return new RdbParser({
      ignoreChecksum: this.args.ignoreChecksum,
      checksum,
      values: !this.args.stats || this.args.deep,
      streamThreshold: this.args.streamThreshold,
      onAux: (name, value) => {
        if (name === 'repl-id') this.replid = value.toString('latin1');
        else if (name === 'repl-offset') this.replOffset = Number(value.toString('latin1'));
      },
      onStringKey: (k) => this.onStringKey(k),
      onPackedKey: (k) => this.onPackedKey(k),
      onKey: (rec) => this.onKey(rec),
    });
  }

  /** The file through the parser; null when the reader went away before the end. */
  private async read(parser: RdbParser, crcThread: Crc64Thread | null): Promise<RdbSummary | null> {
    const stream = createReadStream(this.args.file, { highWaterMark: READ_BYTES });
    for await (const chunk of stream) {
      this.bytesRead += (chunk as Buffer).length;
      if (crcThread) await crcThread.update(chunk as Buffer);
      parser.write(chunk as Buffer);
      if (this.w.length > 0 && !this.closed) this.flush();
      if (this.full && !this.closed) {
        this.full = false;
        await drained(this.out);
      }
      if (this.closed) {
        stream.destroy();
        crcThread?.stop();
        return null;
      }
    }
    const summary = parser.end();
    return crcThread ? crcThread.verify(summary, this.args.ignoreChecksum) : summary;
  }

  private failed(err: unknown): number {
    if (err instanceof RdbFormatError) {
      // The keys before the damage are still worth having.
      if (this.w.length > 0 && !this.closed) this.flush();
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(
      `redtail rdb: ${e.code === 'ENOENT' ? `no such file: ${this.args.file}` : e.message}\n`,
    );
    return 1;
  }

  private onStringKey(k: RdbStringKey): void {
    this.keysRead++;
    if (this.args.stats) {
      if (this.wantedView(k.db, 'string', k.key)) this.count('string', 'string', k.size);
      return;
    }
    this.begin(0);
    if (!this.wantedView(k.db, 'string', k.key)) return;
    this.selected++;
    this.w.snapshotString(k, this.replid, this.replOffset, this.seq++, Date.now());
    this.flushSome();
  }

  /** Sets, small zsets and hashes: their intset or listpack blob is walked straight into the line. */
  private onPackedKey(k: RdbPackedKey): void {
    this.keysRead++;
    if (this.args.stats) {
      if (this.wantedView(k.db, k.type, k.key)) this.count(k.type, k.encoding, k.size);
      return;
    }
    this.begin(0);
    if (!this.wantedView(k.db, k.type, k.key)) return;
    this.selected++;
    writePackedSnapshot(this.w, k, this.replid, this.replOffset, this.seq++, Date.now());
    this.flushSome();
  }

  private onKey(rec: RdbKeyRecord): void {
    const whole = rec.part === undefined || rec.last === true;
    if (whole) this.keysRead++;
    if (this.args.stats) {
      if (whole && this.wanted(rec.db, rec.type) && this.keyWanted(rec.key))
        this.count(rec.type, rec.encoding, rec.size);
      return;
    }
    this.begin(0);
    if (!this.wanted(rec.db, rec.type) || !this.keyWanted(rec.key)) return;
    this.selected++;
    this.w.event(snapshotEvent(rec, { replid: this.replid, offset: this.replOffset, seq: this.seq++ }));
    this.flushSome();
  }

  private count(type: string, encoding: string, bytes: number): void {
    this.selected++;
    tally(this.byType, type, bytes);
    tally(this.byEncoding, encoding, bytes);
  }

  private wanted(db: number, type: string): boolean {
    return (
      (this.args.db === null || db === this.args.db) && (this.args.type === null || type === this.args.type)
    );
  }

  private keyWanted(key: Buffer): boolean {
    return this.keyMatches === null || this.keyMatches(key);
  }

  private wantedView(db: number, type: string, key: ByteView): boolean {
    if (!this.wanted(db, type)) return false;
    return this.keyMatches === null || this.keyMatches(key.buf.subarray(key.start, key.end));
  }

  private begin(version: number): void {
    if (this.begun) return;
    this.begun = true;
    if (this.args.markers && !this.args.stats)
      this.w.event(
        snapshotBeginEvent(
          { replid: this.replid, offset: this.replOffset, seq: this.seq++ },
          { rdbVersion: version },
        ),
      );
  }

  /**
   * One input chunk can make ten times its size in lines: writing every MB keeps the buffer (and RSS) small;
   * backpressure is still awaited once per input chunk (read).
   */
  private flushSome(): void {
    if (this.w.length >= FLUSH_BYTES && !this.closed) this.flush();
  }

  /**
   * Each chunk's lines leave as one write of a view of the reusable buffer. stdout on Linux writes files and pipes
   * synchronously, so the buffer is normally free again when write returns; if the stream kept it queued, a new
   * buffer takes its place. Returns false when the stream asked us to wait.
   */
  private flush(): boolean {
    const ok = this.out.write(this.w.view());
    if (!ok) this.full = true;
    if (this.out.writableLength > 0) this.w = new NdjsonWriter(FLUSH_BYTES * 2);
    else this.w.reset();
    return ok;
  }

  /** On a terminal only: the file's size gives the percentage and the ETA. */
  private progress(): ProgressLine {
    const startedAt = Date.now();
    return new ProgressLine('rdb', () => ({
      keys: this.keysRead,
      bytes: this.bytesRead,
      totalBytes: fileSize(this.args.file),
      startedAt,
    }));
  }

  private stats(summary: RdbSummary, started: bigint): object {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const toObj = (m: Map<string, Tally>) =>
      Object.fromEntries([...m.entries()].sort((a, b) => b[1].keys - a[1].keys));
    return {
      file: this.args.file,
      rdbVersion: summary.version,
      flavor: summary.flavor,
      redisVersion: summary.aux['redis-ver'] ?? summary.aux['valkey-ver'] ?? null,
      keys: this.selected,
      totalKeys: summary.keys,
      keysPerDb: summary.keysPerDb,
      types: toObj(this.byType),
      encodings: toObj(this.byEncoding),
      functions: summary.functions,
      checksum: summary.checksum,
      bytes: summary.bytes,
      seconds: Number(seconds.toFixed(3)),
      keysPerSecond: Math.round(summary.keys / seconds),
      megabytesPerSecond: Number((summary.bytes / 1e6 / seconds).toFixed(1)),
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    };
  }
}

/**
 * Waits until stdout takes more output or is gone. A reader that quits early (`redtail rdb big.rdb | head`) closes
 * the pipe: the pending write fails with EPIPE, which `once(out, 'drain')` would turn into a rejection and exit 1.
 */
function drained(out: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('error', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('error', done);
    out.on('close', done);
  });
}

const sizes = new Map<string, number | null>();
function fileSize(path: string): number | null {
  let size = sizes.get(path);
  if (size === undefined) {
    try {
      size = statSync(path).size;
    } catch {
      size = null;
    }
    sizes.set(path, size);
  }
  return size;
}
