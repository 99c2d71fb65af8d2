import net from 'node:net';
import tls from 'node:tls';
import { describeMaster, type MasterAddress } from '../../src/link/MasterAddress.js';
import { tlsOptionsFor } from '../../src/link/tls.js';

/** An error reply (`-ERR ...`, `-WRONGTYPE ...`): a value among the replies, not a failure of the pipeline. */
export class ReplyError {
  constructor(readonly message: string) {}
}

/** A RESP2 reply: bulk strings as Buffers, simple strings as text, integers as numbers, nil as null. */
export type Reply = Buffer | string | number | null | ReplyError | Reply[];

/** One command: its name and arguments. */
export type Command = Array<Buffer | string>;

interface Frame {
  items: Reply[];
  left: number;
}

interface Waiter {
  left: number;
  replies: Reply[];
  resolve: (r: Reply[]) => void;
  reject: (e: Error) => void;
}

interface Latin1Slicer {
  latin1Slice(start: number, end: number): string;
}

/**
 * `b.toString('latin1', start, end)` without its encoding lookup, which costs more than the copy for the short
 * strings verify makes per key (Buffer's latin1Slice, the method toString dispatches to).
 */
export function latin1(b: Buffer, start = 0, end = b.length): string {
  return (b as unknown as Latin1Slicer).latin1Slice(start, end);
}

/** A RESP integer (or length) in place, without making a string. */
function integer(b: Buffer, start: number, end: number): number {
  let i = start;
  const neg = b[i] === 0x2d;
  if (neg) i++;
  let n = 0;
  for (; i < end; i++) n = n * 10 + ((b[i] as number) - 48);
  return neg ? -n : n;
}

const QUEUED = Buffer.from('QUEUED', 'latin1');

/** `+QUEUED` and `+OK` come once per command of a MULTI: the same strings, not a new one each. */
function simpleString(b: Buffer, start: number, end: number): string {
  if (end - start === 6 && b.compare(QUEUED, 0, 6, start, end) === 0) return 'QUEUED';
  if (end - start === 2 && b[start] === 0x4f && b[start + 1] === 0x4b) return 'OK';
  return latin1(b, start, end);
}

/**
 * Incremental RESP2 reply parser. It keeps its place across chunks (nested arrays as a stack, a bulk string split
 * over chunks copied once into a buffer of its declared size), so a 30 MB `HGETALL` reply arriving in 64 KB reads
 * is scanned once, not once per read.
 */
export class ReplyParser {
  private stack: Frame[] = [];
  private line: Buffer | null = null;
  private bulk: Buffer | null = null;
  private bulkFill = 0;

  constructor(private readonly onReply: (r: Reply) => void) {}

  feed(chunk: Buffer): void {
    let b = chunk;
    let pos = 0;
    if (this.bulk) {
      pos = this.fillBulk(b, 0);
      if (this.bulk) return;
    }
    if (this.line) {
      b = Buffer.concat([this.line, b.subarray(pos)]);
      pos = 0;
      this.line = null;
    }
    const len = b.length;
    while (pos < len) {
      // Header lines are a few bytes: a plain loop finds their CR faster than indexOf's call.
      let nl = pos + 1;
      while (nl < len && b[nl] !== 13) nl++;
      if (nl + 1 >= len) {
        this.line = Buffer.from(b.subarray(pos));
        return;
      }
      const kind = b[pos];
      const start = pos + 1;
      pos = nl + 2;
      switch (kind) {
        case 0x2b: // +
          this.emit(simpleString(b, start, nl));
          break;
        case 0x2d: // -
          this.emit(new ReplyError(latin1(b, start, nl)));
          break;
        case 0x3a: // :
          this.emit(integer(b, start, nl));
          break;
        case 0x24: {
          // $
          const n = integer(b, start, nl);
          if (n < 0) {
            this.emit(null);
            break;
          }
          if (pos + n + 2 <= len) {
            // A view of the chunk: valid for as long as the reply is kept (the chunk is not reused).
            this.emit(b.subarray(pos, pos + n));
            pos += n + 2;
            break;
          }
          this.bulk = Buffer.allocUnsafe(n + 2);
          this.bulkFill = 0;
          pos = this.fillBulk(b, pos);
          if (this.bulk) return;
          break;
        }
        case 0x2a: {
          // *
          const n = integer(b, start, nl);
          if (n < 0) this.emit(null);
          else if (n === 0) this.emit([]);
          else this.stack.push({ items: new Array<Reply>(n), left: n });
          break;
        }
        default:
          throw new Error(`unexpected RESP reply type byte ${kind} from the master`);
      }
    }
  }

  /** Copies what `b` has of the pending bulk string; returns the position after it. */
  private fillBulk(b: Buffer, pos: number): number {
    const bulk = this.bulk as Buffer;
    const n = Math.min(bulk.length - this.bulkFill, b.length - pos);
    b.copy(bulk, this.bulkFill, pos, pos + n);
    this.bulkFill += n;
    if (this.bulkFill < bulk.length) return pos + n;
    this.bulk = null;
    this.emit(bulk.subarray(0, bulk.length - 2));
    return pos + n;
  }

  private emit(r: Reply): void {
    let v = r;
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) {
        this.onReply(v);
        return;
      }
      top.items[top.items.length - top.left] = v;
      top.left--;
      if (top.left > 0) return;
      this.stack.pop();
      v = top.items;
    }
  }
}

const digits = (n: number) => (n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : String(n).length);

/**
 * The RESP encoding of a batch of commands in one buffer: sized first, then written in place, so a batch of a
 * thousand keys is one allocation and one socket write. String arguments are ASCII (names, numbers, cursors); keys
 * and values are Buffers.
 */
export function encodeCommands(cmds: Command[]): Buffer {
  let size = 0;
  for (const cmd of cmds) {
    size += 3 + digits(cmd.length);
    for (const a of cmd) size += 5 + digits(a.length) + a.length;
  }
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  // Headers written digit by digit: a template string and Buffer.write per argument cost more than the key's copy.
  const head = (mark: number, n: number) => {
    out[o++] = mark;
    if (n < 10) out[o++] = 48 + n;
    else if (n < 100) {
      out[o++] = 48 + Math.trunc(n / 10);
      out[o++] = 48 + (n % 10);
    } else o += out.write(String(n), o, 'latin1');
    out[o++] = 13;
    out[o++] = 10;
  };
  for (const cmd of cmds) {
    head(0x2a, cmd.length);
    for (const a of cmd) {
      head(0x24, a.length);
      o += typeof a === 'string' ? out.write(a, o, 'latin1') : a.copy(out, o);
      out[o++] = 13;
      out[o++] = 10;
    }
  }
  return out;
}

export interface RespPipeOptions {
  connectTimeoutMs?: number;
  name?: string;
}

/**
 * A plain pipelined connection to the master for bulk reads: a batch of commands is written at once and its replies
 * come back as values, without a client object, promise or callback per command (ioredis spends more per command
 * than Redis does on TYPE or PEXPIRETIME). RESP2 only; AUTH with the URL's credentials; TLS for rediss://.
 */
export class RespPipe {
  private readonly waiting: Waiter[] = [];
  private failure: Error | null = null;
  private readonly parser = new ReplyParser((r) => this.deliver(r));

  private constructor(
    private readonly socket: net.Socket,
    server: string,
  ) {
    socket.on('data', (d: Buffer) => {
      try {
        this.parser.feed(d);
      } catch (err) {
        this.fail(err as Error);
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error(`the connection to ${server} closed`)));
  }

  static async connect(address: MasterAddress, o: RespPipeOptions = {}): Promise<RespPipe> {
    const server = describeMaster(address);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = address.tls
        ? tls.connect({ host: address.host, port: address.port, ...tlsOptionsFor(address.host, address.tls) })
        : net.connect({ host: address.host, port: address.port });
      const timer = setTimeout(
        () => s.destroy(new Error(`connecting to ${server} timed out`)),
        o.connectTimeoutMs ?? 10_000,
      );
      s.once(address.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.removeListener('error', reject);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    socket.setNoDelay(true);
    const pipe = new RespPipe(socket, server);
    const hello: Command[] = [];
    if (address.password !== undefined)
      hello.push(
        address.username ? ['AUTH', address.username, address.password] : ['AUTH', address.password],
      );
    hello.push(['CLIENT', 'SETNAME', o.name ?? 'redtail-verify']);
    const replies = await pipe.send(hello);
    for (const r of replies)
      if (r instanceof ReplyError) {
        pipe.close();
        throw new Error(`${server}: ${r.message}`);
      }
    return pipe;
  }

  /** Writes the commands as one batch; resolves with one reply per command, in order. */
  send(cmds: Command[]): Promise<Reply[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (cmds.length === 0) return Promise.resolve([]);
    const p = new Promise<Reply[]>((resolve, reject) =>
      this.waiting.push({ left: cmds.length, replies: [], resolve, reject }),
    );
    this.socket.write(encodeCommands(cmds));
    return p;
  }

  /** One command's reply. */
  async call(...cmd: Command): Promise<Reply> {
    const [r] = await this.send([cmd]);
    return r ?? null;
  }

  close(): void {
    this.socket.destroy();
  }

  private deliver(r: Reply): void {
    const w = this.waiting[0];
    if (!w) return;
    w.replies.push(r);
    if (--w.left > 0) return;
    this.waiting.shift();
    w.resolve(w.replies);
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
  }
}
