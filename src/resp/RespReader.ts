import { ArgsView, type CommandArgs } from './CommandArgs.js';
import { CR, DOLLAR, LF, MAX_ARGS, MAX_BULK, MAX_INLINE, STAR } from './grammar.js';
import { RespProtocolError } from './RespProtocolError.js';

/** Called once per complete command with its arguments and the stream offset just past its last byte. */
export type CommandHandler = (args: Buffer[], endOffset: number) => void;
/**
 * The same with the arguments as offsets into the chunk (see CommandArgs): the view is reused for the next command,
 * so a handler keeps only the Buffers it took from it.
 */
export type LazyCommandHandler = (args: CommandArgs, endOffset: number) => void;

enum State {
  /** Between commands: the next byte is `*` (multibulk) or the start of an inline command. */
  Start,
  /** Inside the `*N\r\n` header line. */
  ArrayHeader,
  /** Inside a `$len\r\n` line. */
  BulkHeader,
  /** Reading `len` payload bytes plus the trailing CRLF. */
  BulkBody,
  /** Inside an inline command line (space-separated, ends with LF). */
  Inline,
}

/**
 * Incremental reader of the command stream a master sends to its replicas (what Redis's `processMultibulkBuffer`
 * and `processInlineBuffer` accept). It counts every byte, because the replication offset a replica acknowledges
 * and resumes from is the number of stream bytes processed, PINGs and REPLCONF GETACKs included.
 *
 * Framing records each argument as (buffer, start, end) in a reusable view, without making a Buffer per argument;
 * the handler turns into Buffers only the arguments it keeps (zero-copy views of the chunk). A bulk string split
 * across chunks is assembled into one buffer of its declared size, so no chunk is ever concatenated twice.
 */
export class RespReader {
  private state: State = State.Start;
  /** Partial header/inline line carried over from the previous chunk (headers are a few bytes). */
  private lineParts: Buffer[] = [];
  private lineLength = 0;
  private argsLeft = 0;
  private readonly args = new ArgsView();
  private readonly onCommand: LazyCommandHandler;
  private bulk: Buffer | null = null;
  private bulkFill = 0;
  private bulkLen = 0;
  /** Offset of the first byte of the command being read. */
  private commandStart = 0;

  /** Offset just past the last byte consumed. */
  offset: number;

  /**
   * A plain handler gets every argument as a Buffer; `{ lazy }` gets the arguments as offsets (CommandArgs) and
   * decodes only what it reads.
   */
  constructor(onCommand: CommandHandler | { lazy: LazyCommandHandler }, startOffset = 0) {
    this.onCommand =
      typeof onCommand === 'function' ? (args, end) => onCommand(args.toArray(), end) : onCommand.lazy;
    this.offset = startOffset;
    this.commandStart = startOffset;
  }

  /** True when no command is partially read, i.e. `offset` is a command boundary. */
  get atBoundary(): boolean {
    return this.state === State.Start;
  }

  feed(chunk: Buffer): void {
    const base = this.offset;
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      switch (this.state) {
        case State.Start: {
          this.commandStart = base + pos;
          const b = chunk[pos];
          if (b === STAR) {
            this.state = State.ArrayHeader;
            pos++;
          } else if (b === DOLLAR) {
            throw new RespProtocolError(base + pos, 'bulk string outside a multibulk command');
          } else if (b === LF) {
            // Masters send bare "\n" keep-alives while preparing a snapshot; Redis's inline parser skips them.
            pos++;
            this.offset = base + pos;
          } else {
            this.state = State.Inline;
          }
          break;
        }
        case State.ArrayHeader:
        case State.BulkHeader:
        case State.Inline: {
          // Header lines are a few bytes: a byte loop finds their end faster than a native indexOf call.
          let nl = pos;
          while (nl < len && chunk[nl] !== LF) nl++;
          if (nl === len) {
            this.keepLinePart(chunk.subarray(pos), base + pos);
            pos = len;
            break;
          }
          if (this.lineParts.length === 0) this.handleLine(chunk, pos, nl, base + nl + 1);
          else {
            const line = this.takeLine(chunk.subarray(pos, nl));
            this.handleLine(line, 0, line.length, base + nl + 1);
          }
          pos = nl + 1;
          break;
        }
        case State.BulkBody: {
          const need = this.bulkLen + 2 - this.bulkFill;
          const avail = len - pos;
          if (this.bulk === null && avail >= need) {
            // The whole argument is in this chunk: slice it without copying.
            this.checkCrlf(chunk, pos + this.bulkLen, base);
            this.pushArg(chunk, pos, pos + this.bulkLen, base + pos + need);
            pos += need;
            break;
          }
          if (this.bulk === null) this.bulk = Buffer.allocUnsafe(this.bulkLen + 2);
          const n = Math.min(avail, need);
          chunk.copy(this.bulk, this.bulkFill, pos, pos + n);
          this.bulkFill += n;
          pos += n;
          if (this.bulkFill === this.bulkLen + 2) {
            const full = this.bulk;
            this.bulk = null;
            this.bulkFill = 0;
            this.checkCrlf(full, this.bulkLen, base + pos - this.bulkLen - 2);
            this.pushArg(full, 0, this.bulkLen, base + pos);
          }
          break;
        }
      }
    }
    this.offset = base + len;
  }

  private keepLinePart(part: Buffer, at: number): void {
    this.lineLength += part.length;
    // Header lines are tiny; an inline command is capped like Redis's 64 KB PROTO_INLINE_MAX_SIZE.
    if (this.lineLength > MAX_INLINE)
      throw new RespProtocolError(at, 'line longer than 64 KB without a newline');
    this.lineParts.push(Buffer.from(part));
  }

  private takeLine(rest: Buffer): Buffer {
    if (this.lineParts.length === 0) return rest;
    this.lineParts.push(rest);
    const line = Buffer.concat(this.lineParts);
    this.lineParts = [];
    this.lineLength = 0;
    return line;
  }

  /** The line is `line[from, to)` without its LF; `end` is the stream offset just past the LF. */
  private handleLine(line: Buffer, from: number, to: number, end: number): void {
    let l = to;
    if (l > from && line[l - 1] === CR) l--;
    const lineStart = end - (to - from) - 1;
    switch (this.state) {
      case State.ArrayHeader: {
        const n = parseLength(line, from, l);
        if (n < 0 || n > MAX_ARGS) throw new RespProtocolError(this.commandStart, `invalid multibulk length`);
        if (n === 0) {
          // `*0\r\n` (or a null array) carries no command; Redis skips it.
          this.state = State.Start;
          this.offset = end;
          return;
        }
        this.argsLeft = n;
        this.args.clear();
        this.state = State.BulkHeader;
        return;
      }
      case State.BulkHeader: {
        if (line[from] !== DOLLAR)
          throw new RespProtocolError(lineStart, `expected '$', got 0x${(line[from] ?? 0).toString(16)}`);
        const n = parseLength(line, from + 1, l);
        if (n < 0 || n > MAX_BULK) throw new RespProtocolError(lineStart, 'invalid bulk length');
        this.bulkLen = n;
        this.bulkFill = 0;
        this.state = State.BulkBody;
        return;
      }
      case State.Inline: {
        this.args.clear();
        splitInline(line, from, l, this.args);
        this.state = State.Start;
        this.offset = end;
        if (this.args.length > 0) this.onCommand(this.args, end);
        return;
      }
      default:
        return;
    }
  }

  private checkCrlf(buf: Buffer, at: number, base: number): void {
    if (buf[at] !== CR || buf[at + 1] !== LF)
      throw new RespProtocolError(base + at, 'bulk string not terminated by CRLF');
  }

  private pushArg(buf: Buffer, start: number, stop: number, end: number): void {
    this.args.push(buf, start, stop);
    if (--this.argsLeft > 0) {
      this.state = State.BulkHeader;
      return;
    }
    this.state = State.Start;
    this.offset = end;
    this.onCommand(this.args, end);
  }
}

/** Parses a non-negative decimal in `buf[from, to)`; -1 when it is not one (a null `-1` counts as invalid too). */
function parseLength(buf: Buffer, from: number, to: number): number {
  if (to <= from || to - from > 12) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** Inline commands are space separated; masters only ever send simple ones (no quoting needed for PING). */
function splitInline(line: Buffer, from: number, n: number, out: ArgsView): void {
  let i = from;
  while (i < n) {
    while (i < n && (line[i] === 32 || line[i] === 9)) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && line[i] !== 32 && line[i] !== 9) i++;
    out.push(line, start, i);
  }
}
