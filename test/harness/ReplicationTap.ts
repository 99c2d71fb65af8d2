import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** One command of the replication stream, with the state a pipeline would track around it. */
export interface TappedCommand {
  args: Buffer[];
  /** Database selected by the last SELECT before it. */
  db: number;
  /** Set inside MULTI/EXEC: the offset of the MULTI, as a transaction id. */
  txn?: string;
  /** Replication offset at the end of the command. */
  offset: number;
  /** When the tap parsed it. */
  receivedAt: number;
}

class Incomplete extends Error {}

/**
 * A minimal replica for tests: handshakes like redis-server's own replica (PING, REPLCONF capa, PSYNC ? -1),
 * skips the RDB of the full resync (the master must use disk-based sync, `repl-diskless-sync no`, so the payload
 * comes as `$<len>\r\n<bytes>`), then parses the propagated RESP arrays and counts offsets. SELECT, MULTI, EXEC and
 * PING are tracked but not returned; every other command is.
 */
export class ReplicationTap {
  replid = '';
  /** Offset of the last fully parsed byte of the stream. */
  offset = 0;
  private buf: Buffer = Buffer.alloc(0);
  private phase: 'handshake' | 'rdb' | 'stream' = 'handshake';
  private pending: ((line: string) => void)[] = [];
  private db = 0;
  private txn: string | undefined;
  private commands: TappedCommand[] = [];
  private ackTimer: NodeJS.Timeout | undefined;
  private error: Error | undefined;
  /** Every command including control ones, for debugging. */
  readonly raw: Buffer[][] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      this.closed = true;
    });
  }

  /** True once the master closed the link (e.g. a replica promoted with REPLICAOF NO ONE drops its replicas). */
  closed = false;

  static async connect(port: number, host = '127.0.0.1', password?: string): Promise<ReplicationTap> {
    return ReplicationTap.open(port, host, password, null);
  }

  /**
   * Continues a recorded history on another (or the same) server with `PSYNC <replid> <offset+1>`, as a replica
   * does after a failover; fails unless the server answers +CONTINUE.
   */
  static async resume(
    port: number,
    from: { replid: string; offset: number; db: number },
    host = '127.0.0.1',
    password?: string,
  ): Promise<ReplicationTap> {
    return ReplicationTap.open(port, host, password, from);
  }

  private static async open(
    port: number,
    host: string,
    password: string | undefined,
    from: { replid: string; offset: number; db: number } | null,
  ): Promise<ReplicationTap> {
    const socket = net.connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const tap = new ReplicationTap(socket);
    if (password !== undefined) await tap.request(['AUTH', password]);
    await tap.request(['PING']);
    await tap.request(['REPLCONF', 'listening-port', '0']);
    await tap.request(['REPLCONF', 'capa', 'eof', 'capa', 'psync2']);
    if (from) {
      tap.offset = from.offset;
      tap.db = from.db;
      const reply = await tap.request(['PSYNC', from.replid, String(from.offset + 1)]);
      if (!reply.startsWith('+CONTINUE')) throw new Error(`expected +CONTINUE, got ${reply}`);
      tap.replid = reply.split(' ')[1] ?? from.replid;
    } else {
      const reply = await tap.request(['PSYNC', '?', '-1']);
      const parts = reply.split(' ');
      if (parts[0] !== '+FULLRESYNC') throw new Error(`unexpected PSYNC reply ${reply}`);
      tap.replid = parts[1]!;
      tap.offset = Number(parts[2]);
      tap.phase = 'rdb';
    }
    tap.onData(Buffer.alloc(0));
    // The master drops replicas that stay silent for repl-timeout; acknowledge like a real replica does.
    tap.ackTimer = setInterval(() => tap.send(['REPLCONF', 'ACK', String(tap.offset)]), 500);
    // Return only once the snapshot is through: a FLUSHALL while the master's BGSAVE child is still writing kills
    // that child, and Redis then drops every replica waiting on it ("SYNC failed. BGSAVE child returned an error"),
    // which a test issuing FLUSHALL right after connecting would otherwise hit on a loaded machine.
    const deadline = Date.now() + 30_000;
    while (tap.phase !== 'stream') {
      if (tap.error) throw tap.error;
      if (tap.closed)
        throw new Error(`master on port ${port} closed the link before the snapshot was through`);
      if (Date.now() > deadline) throw new Error(`no snapshot from the master on port ${port} within 30 s`);
      await sleep(2);
    }
    return tap;
  }

  private send(args: string[]): void {
    let s = `*${args.length}\r\n`;
    for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    this.socket.write(s);
  }

  private request(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      this.pending.push((line) => (line.startsWith('-') ? reject(new Error(line)) : resolve(line)));
      this.send(args);
    });
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    try {
      for (;;) {
        if (this.phase === 'handshake') {
          const end = this.buf.indexOf('\r\n');
          if (end < 0 || this.pending.length === 0) return;
          const line = this.buf.subarray(0, end).toString('latin1');
          this.buf = this.buf.subarray(end + 2);
          const cb = this.pending.shift()!;
          if (line.startsWith('+FULLRESYNC')) this.phase = 'rdb';
          // Stream bytes may follow +CONTINUE in the same chunk.
          else if (line.startsWith('+CONTINUE')) this.phase = 'stream';
          cb(line);
        } else if (this.phase === 'rdb') {
          // The master sends bare newlines as keepalives while it produces the RDB.
          while (this.buf.length > 0 && this.buf[0] === 10) this.buf = this.buf.subarray(1);
          const end = this.buf.indexOf('\r\n');
          if (end < 0) return;
          const header = this.buf.subarray(0, end).toString('latin1');
          if (!header.startsWith('$') || header.startsWith('$EOF:'))
            throw new Error(`unexpected RDB header ${header} (use repl-diskless-sync no)`);
          const len = Number(header.slice(1));
          if (this.buf.length < end + 2 + len) return;
          this.buf = this.buf.subarray(end + 2 + len);
          this.phase = 'stream';
        } else {
          if (this.buf.length === 0) return;
          let parsed: [Buffer[], number];
          try {
            parsed = this.parseArray(0);
          } catch (err) {
            if (err instanceof Incomplete) return;
            throw err;
          }
          const [args, used] = parsed;
          this.buf = this.buf.subarray(used);
          this.offset += used;
          this.onCommand(args);
        }
      }
    } catch (err) {
      this.error = err as Error;
      this.socket.destroy();
    }
  }

  private line(at: number): [string, number] {
    const end = this.buf.indexOf('\r\n', at);
    if (end < 0) throw new Incomplete();
    return [this.buf.subarray(at, end).toString('latin1'), end + 2];
  }

  private parseArray(at: number): [Buffer[], number] {
    const [head, afterHead] = this.line(at);
    if (head[0] !== '*') throw new Error(`expected a RESP array in the stream, got ${JSON.stringify(head)}`);
    const n = Number(head.slice(1));
    const args: Buffer[] = [];
    let p = afterHead;
    for (let i = 0; i < n; i++) {
      const [bulk, afterBulk] = this.line(p);
      if (bulk[0] !== '$') throw new Error(`expected a bulk string, got ${JSON.stringify(bulk)}`);
      const len = Number(bulk.slice(1));
      if (this.buf.length < afterBulk + len + 2) throw new Incomplete();
      args.push(Buffer.from(this.buf.subarray(afterBulk, afterBulk + len)));
      p = afterBulk + len + 2;
    }
    return [args, p - at];
  }

  private onCommand(args: Buffer[]): void {
    this.raw.push(args);
    const name = args[0]!.toString('latin1').toLowerCase();
    if (name === 'select') this.db = Number(args[1]!.toString());
    else if (name === 'multi') this.txn = String(this.offset);
    else if (name === 'exec') this.txn = undefined;
    else if (name !== 'ping') {
      const c: TappedCommand = { args, db: this.db, offset: this.offset, receivedAt: Date.now() };
      if (this.txn !== undefined) c.txn = this.txn;
      this.commands.push(c);
    }
  }

  /** The position to resume from: offset and database at the end of the last parsed command. */
  get position(): { replid: string; offset: number; db: number } {
    return { replid: this.replid, offset: this.offset, db: this.db };
  }

  /** Waits until the tap has parsed the stream up to `offset`. */
  async waitForOffset(offset: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.offset < offset) {
      if (this.error) throw this.error;
      if (this.closed) throw new Error(`the master closed the tap's link at offset ${this.offset}`);
      if (Date.now() > deadline) throw new Error(`tap at offset ${this.offset}, waiting for ${offset}`);
      await sleep(2);
    }
  }

  /** Returns the commands collected since the last call. */
  drain(): TappedCommand[] {
    if (this.error) throw this.error;
    const out = this.commands;
    this.commands = [];
    return out;
  }

  close(): void {
    if (this.ackTimer) clearInterval(this.ackTimer);
    this.socket.destroy();
  }
}
