/*
 * The replica side of Redis replication as a protocol core: bytes in, handler calls and bytes out, no I/O and no
 * timers (the socket driver, ReplicaLink, owns those). It follows Redis's own replica (replication.c,
 * syncWithMaster and readSyncBulkPayload) step by step.
 *
 * Grammar, replica → master, one command at a time (a master refuses PSYNC while a pipelined command is unanswered):
 *   PING                                   ← +PONG | -NOAUTH … (accepted: AUTH follows)
 *   AUTH [user] password                   ← +OK | -WRONGPASS … | -ERR … no password is set
 *   REPLCONF listening-port <port>         ← +OK            (REPLCONF options are advisory: errors are ignored,
 *   REPLCONF ip-address <ip>               ← +OK             except the permission errors NOAUTH/NOPERM/WRONGPASS)
 *   REPLCONF capa eof capa psync2          ← +OK
 *   REPLCONF version <v>                   ← +OK | -ERR (Redis does not know it; Valkey 9 picks its RDB format by it)
 *   PSYNC <replid> <offset+1> | PSYNC ? -1 ← +FULLRESYNC <replid> <offset> | +CONTINUE [<new replid>] | -ERR …
 * master → replica after +FULLRESYNC:
 *   LF*                                    keep-alives while the master prepares the snapshot
 *   $<len> CRLF <len bytes of RDB>         disk-based transfer
 *   $EOF:<40-byte mark> CRLF <RDB> <mark>  diskless transfer (the master then waits for our first REPLCONF ACK)
 *   -ERR …                                 the snapshot could not start (its fork failed): retried, as Redis does
 * then, and right after +CONTINUE, the command stream (see CommandFramer); `REPLCONF GETACK *` asks for
 *   REPLCONF ACK <offset>                  replica → master, also sent every second by the driver
 */
import { CommandFramer } from '../resp/CommandFramer.js';
import { AuthError, FatalLinkError, HandshakeError } from './errors.js';

/** Where the stream goes: the replicator directly, or the spool. Calls are synchronous and may throw. */
export interface StreamTarget {
  /** The position to PSYNC from (the last complete command held), or null for a full resync. */
  resumePosition(): { replid: string; offset: number } | null;
  /** `+FULLRESYNC`: a snapshot as of `offset` follows. */
  fullResync(replid: string, offset: number): void;
  /** `+CONTINUE`: the stream continues after `offset`; `replid` differs from the requested one after a failover. */
  partialResync(replid: string, offset: number): void;
  /** The snapshot's size when the master announced it (`$<len>`), null for a diskless (`$EOF:`) transfer. */
  snapshotStart?(size: number | null): void;
  snapshotData(chunk: Buffer): void;
  snapshotEnd(): void;
  /**
   * One or more whole commands of the stream (PING and REPLCONF included), ending at offset `endOffset`; after
   * `commandPart` calls, the rest of the big command they began, then whole commands.
   */
  commands(bytes: Buffer, endOffset: number): void;
  /** Optional: a part of a big unfinished command (CommandFramer's `commandPart`; a view: copy what you keep). */
  commandPart?(bytes: Buffer): void;
  /** The offset to report in `REPLCONF ACK` (durable, spooled or received, as configured). */
  ackOffset(): number;
}

export interface ProtocolSettings {
  /** The master as shown in messages (no secrets). */
  master: string;
  username?: string | undefined;
  password?: string | undefined;
  listeningPort: number;
  announceIp?: string | undefined;
  replicaVersion: string;
}

export interface ProtocolEvents {
  send(bytes: Buffer): void;
  /** PSYNC went out: a master with diskless sync may answer only seconds later. */
  psyncSent(requested: string): void;
  handshakeDone(reply: string, requested: string): void;
  /** The snapshot transfer starts: its size when announced (`$<len>`), null when diskless. */
  snapshotStart?(size: number | null): void;
  /** A REPLCONF option the master did not accept (harmless). */
  optionIgnored(option: string, reply: string): void;
}

export type Phase = 'handshake' | 'snapshot' | 'stream';

type Step =
  | { kind: 'ping' }
  | { kind: 'auth' }
  | { kind: 'option'; args: string[] }
  | { kind: 'psync'; requested: string[] };

const EOF_MARK_LEN = 40;
const LF = 10;
const MAX_LINE = 4096;

export class ReplicationProtocol {
  private steps: Step[] = [];
  private step: Step | null = null;
  private mode: 'reply' | 'snapshot-header' | 'snapshot-length' | 'snapshot-eof' | 'stream' = 'reply';
  private line: Buffer[] = [];
  private lineLength = 0;
  private snapshotRemaining = 0;
  private eofMark: Buffer | null = null;
  private eofTail: Buffer = Buffer.alloc(0);
  private framer: CommandFramer | null = null;
  /**
   * Offset of the last `REPLCONF GETACK` whose answer did not yet cover it: with durable ACKs the first answer may lag
   * behind it, so every durable advance is acknowledged at once until the ACKed offset covers it (WAIT returns as
   * soon as the sinks have the data, not at the next 1 s tick).
   */
  private ackWantedThrough = -1;
  readonly counts = { snapshotBytes: 0, streamBytes: 0 };

  constructor(
    private readonly settings: ProtocolSettings,
    private readonly target: StreamTarget,
    private readonly events: ProtocolEvents,
  ) {}

  get phase(): Phase {
    if (this.mode === 'stream') return 'stream';
    return this.mode === 'reply' ? 'handshake' : 'snapshot';
  }

  /** Whether the snapshot's bytes started to arrive (`$<len>` or `$EOF:` read): false while the master prepares it. */
  get snapshotStarted(): boolean {
    return this.mode === 'snapshot-length' || this.mode === 'snapshot-eof' || this.mode === 'stream';
  }

  /** Offset just past the last complete command received (meaningful in the stream phase). */
  get offset(): number {
    return this.framer?.offset ?? 0;
  }

  /** Sends the first handshake command. */
  start(): void {
    const s = this.settings;
    this.steps = [{ kind: 'ping' }];
    if (s.password !== undefined) this.steps.push({ kind: 'auth' });
    this.steps.push({ kind: 'option', args: ['REPLCONF', 'listening-port', String(s.listeningPort)] });
    if (s.announceIp) this.steps.push({ kind: 'option', args: ['REPLCONF', 'ip-address', s.announceIp] });
    this.steps.push({ kind: 'option', args: ['REPLCONF', 'capa', 'eof', 'capa', 'psync2'] });
    this.steps.push({ kind: 'option', args: ['REPLCONF', 'version', s.replicaVersion] });
    this.next();
  }

  feed(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.mode) {
        case 'reply':
        case 'snapshot-header':
          pos = this.readLine(chunk, pos);
          break;
        case 'snapshot-length': {
          const n = Math.min(this.snapshotRemaining, len - pos);
          this.snapshotRemaining -= n;
          this.emitSnapshot(chunk.subarray(pos, pos + n));
          pos += n;
          if (this.snapshotRemaining === 0) this.snapshotDone();
          break;
        }
        case 'snapshot-eof':
          pos += this.consumeEofSnapshot(chunk.subarray(pos));
          break;
        case 'stream':
          this.counts.streamBytes += len - pos;
          this.framer!.feed(pos === 0 ? chunk : chunk.subarray(pos));
          return;
      }
    }
  }

  /** Sends `REPLCONF ACK` with the target's ACK offset (the driver calls this every second). */
  sendAck(): void {
    if (this.mode !== 'stream') return;
    const offset = this.target.ackOffset();
    if (offset >= this.ackWantedThrough) this.ackWantedThrough = -1;
    this.events.send(encodeCommand(['REPLCONF', 'ACK', String(offset)]));
  }

  /** The ACK offset advanced: answers a pending `REPLCONF GETACK` at once. */
  ackAdvanced(): void {
    if (this.ackWantedThrough >= 0) this.sendAck();
  }

  private next(): void {
    const step = this.steps.shift();
    if (!step) {
      const pos = this.target.resumePosition();
      const requested = pos ? [pos.replid, String(pos.offset + 1)] : ['?', '-1'];
      this.step = { kind: 'psync', requested };
      this.events.send(encodeCommand(['PSYNC', ...requested]));
      this.events.psyncSent(requested.join(' '));
      return;
    }
    this.step = step;
    const s = this.settings;
    switch (step.kind) {
      case 'ping':
        this.events.send(encodeCommand(['PING']));
        return;
      case 'auth':
        this.events.send(
          encodeCommand(s.username ? ['AUTH', s.username, s.password ?? ''] : ['AUTH', s.password ?? '']),
        );
        return;
      case 'option':
        this.events.send(encodeCommand(step.args));
        return;
      default:
        return;
    }
  }

  /** Reads one reply or snapshot-header line; returns the position after it (or the chunk's end). */
  private readLine(chunk: Buffer, pos: number): number {
    const nl = chunk.indexOf(LF, pos);
    // Counted up to the newline too, so a line is refused whether it arrives in one chunk or in several.
    this.lineLength += (nl === -1 ? chunk.length : nl) - pos;
    if (this.lineLength > MAX_LINE)
      throw new FatalLinkError(
        `master ${this.settings.master} sent an overlong reply line during the handshake`,
      );
    if (nl === -1) {
      this.line.push(Buffer.from(chunk.subarray(pos)));
      return chunk.length;
    }
    this.line.push(chunk.subarray(pos, nl));
    const raw = this.line.length === 1 ? this.line[0]! : Buffer.concat(this.line);
    this.line = [];
    this.lineLength = 0;
    const text = raw.toString('latin1').replace(/\r$/, '');
    // Empty lines are the keep-alives a master sends while it prepares the snapshot.
    if (text !== '') {
      if (this.mode === 'reply') this.reply(text);
      else this.snapshotHeader(text);
    }
    return nl + 1;
  }

  private reply(line: string): void {
    const step = this.step;
    const master = this.settings.master;
    if (!step) throw new FatalLinkError(`master ${master} sent '${line.slice(0, 60)}' without being asked`);
    switch (step.kind) {
      case 'ping':
        // A master with a password answers PING with NOAUTH before AUTH; Redis's replica accepts that too.
        if (line.startsWith('-') && !/^-(NOAUTH|NOPERM|ERR operation not permitted)/.test(line))
          throw new HandshakeError(master, 'PING', line);
        break;
      case 'auth':
        if (line.startsWith('-')) throw authError(master, line);
        break;
      case 'option':
        if (/^-(NOAUTH|NOPERM|WRONGPASS)/.test(line)) throw authError(master, line);
        if (line.startsWith('-')) this.events.optionIgnored(step.args[1]!, line);
        break;
      case 'psync':
        this.psyncReply(line, step.requested);
        return;
    }
    this.next();
  }

  private psyncReply(line: string, requested: string[]): void {
    const master = this.settings.master;
    this.step = null;
    if (line.startsWith('-')) {
      if (/^-(NOAUTH|NOPERM|WRONGPASS)/.test(line)) throw authError(master, line);
      throw new HandshakeError(master, 'PSYNC', line);
    }
    const parts = line.split(' ');
    if (parts[0] === '+FULLRESYNC' && parts.length >= 3 && /^\d+$/.test(parts[2]!)) {
      const replid = parts[1]!;
      const offset = Number(parts[2]);
      this.events.handshakeDone(line, requested.join(' '));
      this.target.fullResync(replid, offset);
      this.framer = this.newFramer(offset);
      this.mode = 'snapshot-header';
      return;
    }
    if (parts[0] === '+CONTINUE' && requested[0] !== '?') {
      const offset = Number(requested[1]) - 1;
      const replid = parts[1] ?? requested[0]!;
      this.events.handshakeDone(line, requested.join(' '));
      this.target.partialResync(replid, offset);
      this.framer = this.newFramer(offset);
      this.mode = 'stream';
      return;
    }
    throw new FatalLinkError(
      `master ${master} answered PSYNC with '${line}', which is not a reply redtail knows`,
    );
  }

  private newFramer(offset: number): CommandFramer {
    return new CommandFramer(
      {
        commands: (bytes, end) => this.target.commands(bytes, end),
        ...(this.target.commandPart
          ? { commandPart: (bytes: Buffer) => this.target.commandPart?.(bytes) }
          : {}),
        getAck: (end) => {
          // REPLCONF GETACK * asks for an ACK now (WAIT, failover); it is answered once counted into the offset.
          this.ackWantedThrough = end;
          this.sendAck();
        },
      },
      offset,
    );
  }

  private snapshotHeader(line: string): void {
    const master = this.settings.master;
    // A master whose snapshot could not start says so here and closes ("-ERR BGSAVE failed, replication can't
    // continue" when its fork fails after +FULLRESYNC went out); Redis's replica retries, and so does redtail.
    if (line.startsWith('-')) throw new HandshakeError(master, 'the snapshot transfer', line);
    if (!line.startsWith('$'))
      throw new FatalLinkError(
        `master ${master} sent '${line.slice(0, 60)}' where the snapshot should start`,
      );
    if (line.startsWith('$EOF:')) {
      const mark = line.slice(5);
      if (mark.length !== EOF_MARK_LEN)
        throw new FatalLinkError(`master ${master} sent a malformed $EOF: mark`);
      this.eofMark = Buffer.from(mark, 'latin1');
      this.mode = 'snapshot-eof';
      this.target.snapshotStart?.(null);
      this.events.snapshotStart?.(null);
      return;
    }
    const n = Number(line.slice(1));
    if (!/^\$\d+$/.test(line) || !Number.isSafeInteger(n))
      throw new FatalLinkError(`master ${master} announced an invalid snapshot length '${line}'`);
    this.snapshotRemaining = n;
    this.mode = 'snapshot-length';
    this.target.snapshotStart?.(n);
    this.events.snapshotStart?.(n);
    if (n === 0) this.snapshotDone();
  }

  /**
   * Diskless transfers end with the 40-byte mark announced in `$EOF:<mark>`. The last 40 bytes are held back until
   * more data proves they are not the mark, so the RDB parser never sees the mark. Returns the bytes consumed.
   */
  private consumeEofSnapshot(data: Buffer): number {
    const mark = this.eofMark!;
    const tail = this.eofTail;
    if (tail.length > 0) {
      const probe = Buffer.concat([tail, data.subarray(0, EOF_MARK_LEN)]);
      const at = probe.indexOf(mark);
      if (at !== -1) {
        this.emitSnapshot(probe.subarray(0, at));
        this.eofTail = Buffer.alloc(0);
        this.snapshotDone();
        return at + EOF_MARK_LEN - tail.length;
      }
    }
    const at = data.indexOf(mark);
    if (at !== -1) {
      this.emitSnapshot(tail);
      this.emitSnapshot(data.subarray(0, at));
      this.eofTail = Buffer.alloc(0);
      this.snapshotDone();
      return at + EOF_MARK_LEN;
    }
    if (data.length >= EOF_MARK_LEN) {
      this.emitSnapshot(tail);
      this.emitSnapshot(data.subarray(0, data.length - EOF_MARK_LEN));
      this.eofTail = Buffer.from(data.subarray(data.length - EOF_MARK_LEN));
    } else {
      const joined = Buffer.concat([tail, data]);
      const keep = Math.min(EOF_MARK_LEN, joined.length);
      this.emitSnapshot(joined.subarray(0, joined.length - keep));
      this.eofTail = Buffer.from(joined.subarray(joined.length - keep));
    }
    return data.length;
  }

  private emitSnapshot(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.counts.snapshotBytes += bytes.length;
    this.target.snapshotData(bytes);
  }

  private snapshotDone(): void {
    this.target.snapshotEnd();
    this.mode = 'stream';
    // A master that sent a diskless snapshot holds the command stream back until the replica's first ACK
    // (Redis: repl_start_cmd_stream_on_ack); sending one after any snapshot is harmless.
    this.sendAck();
  }
}

function authError(master: string, reply: string): AuthError {
  const hint = /without any password|no password is set/i.test(reply)
    ? 'the master has no password: remove it from the master URL'
    : /NOPERM/.test(reply)
      ? 'the user needs permission for PSYNC, REPLCONF and PING (e.g. +psync +replconf +ping)'
      : /NOAUTH/.test(reply)
        ? 'the master requires a password: give it in the master URL, redis://[user:]password@host:port'
        : 'check the user name and password in the master URL';
  return new AuthError(master, reply.replace(/^-/, ''), hint);
}

export function encodeCommand(args: string[]): Buffer {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return Buffer.from(out);
}
