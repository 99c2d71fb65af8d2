/*
 * Frames the replication command stream into whole commands without decoding them.
 *
 * Grammar (what Redis's processMultibulkBuffer / processInlineBuffer accept from a master):
 *   stream   := ( command | LF )*
 *   command  := '*' count CRLF ( '$' len CRLF <len bytes> CRLF ){count}     multibulk; count 0 carries nothing
 *             | <bytes without LF> LF                                       inline (old masters' PING)
 * A bare LF is a keep-alive; Redis's inline parser skips it, but it still counts into the replication offset.
 *
 * The link uses this to hand over (and spool) only complete commands, so a spool segment or a batch never ends inside
 * one, and to notice `REPLCONF GETACK`, which must be answered as soon as it is counted into the offset.
 */
import { CR, DOLLAR, LF, MAX_ARGS, MAX_BULK, MAX_INLINE, STAR } from './grammar.js';
import { RespProtocolError } from './RespProtocolError.js';

export interface FramerHandler {
  /**
   * One or more whole commands, contiguous, ending at stream offset `endOffset`. The buffer may be a view of the
   * socket chunk: a consumer that keeps it past the call must copy it.
   */
  commands(bytes: Buffer, endOffset: number): void;
  /** A `REPLCONF GETACK` ended at `endOffset`; everything through it was already passed to `commands`. */
  getAck(endOffset: number): void;
  /**
   * Optional: the beginning of a command of `BIG_COMMAND_BYTES` or more that has not ended yet (issue 16: values up
   * to Redis's 512 MB `proto-max-bulk-len`). Instead of holding it back until it ends, the framer hands it over in
   * parts as it arrives; the `commands` call that follows starts with its rest. A view of the socket chunk: copy what
   * you keep. Without this method a command is always handed over whole.
   */
  commandPart?(bytes: Buffer): void;
}

/** A command still unfinished after this many bytes goes to `commandPart` in parts instead of being held back. */
export const BIG_COMMAND_BYTES = 1 << 20;

/** `*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n` — what every master sends (with `$1\r\n*\r\n` after it). */
const GETACK_HEAD = Buffer.from('*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n', 'latin1');

enum State {
  Start,
  /** Reading a `*N` or `$N` header's digits (header kind in `headerKind`). */
  Header,
  /** Skipping a bulk body plus its CRLF. */
  Body,
  Inline,
}

export class CommandFramer {
  private state = State.Start;
  private headerKind = 0;
  private headerValue = 0;
  private headerDigits = 0;
  private sawCr = false;
  private argsLeft = 0;
  private bodyLeft = 0;
  private lineLength = 0;
  /** Pieces of a command that started in an earlier chunk. */
  private carry: Buffer[] = [];
  /** Stream offset just past the last complete command. */
  private end: number;
  /** Bytes of the unfinished command already handed to `commandPart` (0: none), and the last of them. */
  private streamed = 0;
  private lastStreamedByte = -1;

  constructor(
    private readonly handler: FramerHandler,
    startOffset: number,
  ) {
    this.end = startOffset;
  }

  /** Offset just past the last complete command (the position a replica would resume from). */
  get offset(): number {
    return this.end;
  }

  /** Bytes of an incomplete command held back. */
  get pendingBytes(): number {
    let n = 0;
    for (const c of this.carry) n += c.length;
    return n;
  }

  feed(chunk: Buffer): void {
    const len = chunk.length;
    this.runFrom = 0;
    this.runEnd = 0;
    let pos = 0;
    while (pos < len) {
      switch (this.state) {
        case State.Start: {
          const b = chunk[pos]!;
          if (b === STAR) {
            this.beginHeader(STAR);
            pos++;
          } else if (b === LF) {
            pos++;
            this.complete(chunk, pos);
          } else if (b === DOLLAR) {
            throw this.error('bulk string outside a multibulk command');
          } else {
            this.state = State.Inline;
            this.lineLength = 0;
          }
          break;
        }
        case State.Header:
          pos = this.header(chunk, pos);
          break;
        case State.Body: {
          const n = Math.min(this.bodyLeft, len - pos);
          pos += n;
          this.bodyLeft -= n;
          if (this.bodyLeft === 0) {
            if (chunk[pos - 1] !== LF || (pos >= 2 ? chunk[pos - 2] : this.lastCarryByte()) !== CR)
              throw this.error('bulk string not terminated by CRLF');
            if (--this.argsLeft === 0) this.complete(chunk, pos);
            else this.expectBulkHeader();
          }
          break;
        }
        case State.Inline: {
          const nl = chunk.indexOf(LF, pos);
          if (nl === -1) {
            this.lineLength += len - pos;
            if (this.lineLength > MAX_INLINE) throw this.error('line longer than 64 KB without a newline');
            pos = len;
            break;
          }
          pos = nl + 1;
          this.complete(chunk, pos);
          break;
        }
      }
    }
    if (this.runEnd > this.runFrom)
      this.handler.commands(chunk.subarray(this.runFrom, this.runEnd), this.end);
    // The unfinished command is copied: the socket's chunk may be reused once this returns.
    if (this.runEnd < len) this.holdBack(chunk.subarray(this.runEnd));
  }

  /** The start of an unfinished command: copied into `carry`, or handed over in parts once it is big. */
  private holdBack(rest: Buffer): void {
    const part = this.handler.commandPart;
    if (part && (this.streamed > 0 || this.pendingBytes + rest.length >= BIG_COMMAND_BYTES)) {
      const head = this.carry.length > 0 ? Buffer.concat([...this.carry, rest]) : rest;
      this.carry = [];
      this.streamed += head.length;
      this.lastStreamedByte = head[head.length - 1]!;
      part.call(this.handler, head);
      return;
    }
    this.carry.push(Buffer.from(rest));
  }

  /** Within the chunk being fed: start of the commands not yet handed over, and end of the last complete one. */
  private runFrom = 0;
  private runEnd = 0;

  /**
   * Consumes the bytes of a `*N` / `$N` header line that are in this chunk (the digits in one loop: a header is
   * parsed once per argument); returns the next position.
   */
  private header(chunk: Buffer, pos: number): number {
    if (!this.sawCr && this.headerDigits >= 0) {
      const len = chunk.length;
      let v = this.headerValue;
      let digits = this.headerDigits;
      let b = 0;
      while (pos < len) {
        b = chunk[pos]!;
        const d = b - 48;
        if (d < 0 || d > 9) break;
        if (digits >= 12) throw this.error('invalid length in a header');
        v = v * 10 + d;
        digits++;
        pos++;
      }
      this.headerValue = v;
      this.headerDigits = digits;
      if (pos === len) return pos;
    }
    const b = chunk[pos++]!;
    if (this.sawCr) {
      if (b !== LF) throw this.error('header line not terminated by CRLF');
      this.sawCr = false;
      if (this.headerDigits <= 0) throw this.error('empty length in a header');
      if (this.headerKind === DOLLAR) {
        if (this.headerValue > MAX_BULK) throw this.error('invalid bulk length');
        this.bodyLeft = this.headerValue + 2;
        this.state = State.Body;
      } else if (this.headerValue > MAX_ARGS) {
        throw this.error('invalid multibulk length');
      } else if (this.headerValue === 0) {
        // `*0` carries no command; Redis skips it (but counts its bytes).
        this.complete(chunk, pos);
      } else {
        this.argsLeft = this.headerValue;
        this.expectBulkHeader();
      }
    } else if (b === CR) {
      this.sawCr = true;
      // The LF is usually in the same chunk: take it now rather than on another turn of feed's loop.
      if (pos < chunk.length) return this.header(chunk, pos);
    } else if (this.headerDigits === -1) {
      if (b !== DOLLAR) throw this.error(`expected '$', got 0x${b.toString(16)}`);
      this.headerDigits = 0;
      if (pos < chunk.length) return this.header(chunk, pos);
    } else {
      const d = b - 48;
      if (d < 0 || d > 9 || this.headerDigits >= 12) throw this.error('invalid length in a header');
      this.headerValue = this.headerValue * 10 + d;
      this.headerDigits++;
    }
    return pos;
  }

  /** A command (or keep-alive) ended at `pos` of `chunk`. */
  private complete(chunk: Buffer, pos: number): void {
    this.state = State.Start;
    if (this.streamed > 0) {
      // A big command handed over in parts: its rest ends it (a GETACK is never this big).
      this.end += this.streamed + pos;
      this.streamed = 0;
      this.runFrom = this.runEnd = pos;
      this.handler.commands(chunk.subarray(0, pos), this.end);
      return;
    }
    if (this.carry.length > 0) {
      // It began in an earlier chunk: hand it over on its own, assembled once.
      this.carry.push(chunk.subarray(0, pos));
      const whole = Buffer.concat(this.carry);
      this.carry = [];
      this.end += whole.length;
      this.runFrom = this.runEnd = pos;
      this.handler.commands(whole, this.end);
      if (isGetAck(whole, 0, whole.length)) this.handler.getAck(this.end);
      return;
    }
    const cmdStart = this.runEnd;
    this.end += pos - cmdStart;
    this.runEnd = pos;
    if (isGetAck(chunk, cmdStart, pos)) {
      // Everything through the GETACK is handed over before the ACK is asked for.
      this.handler.commands(chunk.subarray(this.runFrom, pos), this.end);
      this.runFrom = pos;
      this.handler.getAck(this.end);
    }
  }

  private beginHeader(kind: number): void {
    this.state = State.Header;
    this.headerKind = kind;
    this.headerValue = 0;
    this.headerDigits = 0;
    this.sawCr = false;
  }

  private expectBulkHeader(): void {
    this.beginHeader(DOLLAR);
    // -1: the '$' itself is still to come.
    this.headerDigits = -1;
  }

  private lastCarryByte(): number {
    if (this.streamed > 0 && this.carry.length === 0) return this.lastStreamedByte;
    const last = this.carry[this.carry.length - 1];
    return last && last.length > 0 ? last[last.length - 1]! : -1;
  }

  private error(message: string): RespProtocolError {
    return new RespProtocolError(this.end, message);
  }
}

function isGetAck(buf: Buffer, start: number, end: number): boolean {
  if (end - start < GETACK_HEAD.length) return false;
  if (buf[start] !== STAR || buf[start + 1] !== 51 /* '3' */) return false;
  for (let i = 0; i < GETACK_HEAD.length; i++) {
    const b = buf[start + i]!;
    // Command names keep the sender's casing; compare letters case-insensitively.
    if ((b | 0x20) !== (GETACK_HEAD[i]! | 0x20)) return false;
  }
  return true;
}
