import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import type { Logger } from '../observe/logger.js';
import { RespReader } from '../resp/RespReader.js';
import { AuthError, FatalLinkError, HandshakeError, isFatal, ReplicationTimeoutError } from './errors.js';
import { describeMaster, type MasterAddress } from './MasterAddress.js';
import type { MasterLocator } from './MasterLocator.js';
import {
  answersPlaintext,
  explainTlsError,
  plaintextPortMessage,
  speaksTls,
  tlsOptionsFor,
  tlsPortMessage,
} from './tls.js';

/** What the link needs from the rest of redtail; all calls are synchronous and may throw to end the link. */
export interface ReplicationHandler {
  /** The last fully processed position to PSYNC from, or null for a full resync. */
  resumePosition(): { replid: string; offset: number } | null;
  /** `+FULLRESYNC`: a snapshot as of `offset` follows. */
  fullResync(replid: string, offset: number): void;
  /** `+CONTINUE`: the stream continues after `offset`; `replid` differs from the requested one after a failover. */
  partialResync(replid: string, offset: number): void;
  snapshotData(chunk: Buffer): void;
  snapshotEnd(): void;
  /** Every command of the stream, PING and REPLCONF included, with the offset just past it. */
  command(args: Buffer[], endOffset: number): void;
  /** The offset to report in `REPLCONF ACK` (durable or received, as configured). */
  ackOffset(): number;
}

export interface ReplicaLinkOptions {
  /** Finds the master before each connection (a fixed address, candidates, or Sentinel). */
  locator: MasterLocator;
  handler: ReplicationHandler;
  logger: Logger;
  /** Reported with `REPLCONF listening-port`; redtail accepts no connections, so 0 unless told otherwise. */
  listeningPort?: number;
  /** Reported with `REPLCONF ip-address` when set (NAT or container setups). */
  announceIp?: string;
  /**
   * Sent as `REPLCONF version`: a Valkey 9 master picks its snapshot format from it (VALKEY080 or an older
   * REDIS0011); Redis masters reject the option, which is harmless.
   */
  replicaVersion?: string;
  /** Like Redis's `repl-timeout`: the master PINGs every 10 s by default, so silence this long means a dead link. */
  readTimeoutMs?: number;
  /** TCP connect plus, for rediss://, the TLS handshake. */
  connectTimeoutMs?: number;
  ackIntervalMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * A full sync costs the master a fork and a snapshot transfer. When a full sync would follow another one sooner
   * than this, the link waits, so a link that keeps breaking never turns into a full-sync storm.
   */
  minFullSyncIntervalMs?: number;
}

export type LinkPhase = 'connecting' | 'handshake' | 'snapshot' | 'streaming' | 'stopped';

export interface LinkStatus {
  phase: LinkPhase;
  /** The master's replication offset just past the last complete command received (null before any stream). */
  receivedOffset: number | null;
  /** Size of the snapshot being (or last) received when the master announced it (`$<len>`), else null. */
  snapshotBytesTotal: number | null;
}

type Mode = 'handshake' | 'snapshot-header' | 'snapshot-length' | 'snapshot-eof' | 'stream';

const EOF_MARK_LEN = 40;
const LF = 10;

/**
 * A replication link to one master, speaking the replica side of the protocol exactly as Redis's own replica does
 * (replication.c, syncWithMaster): the handshake one command at a time, PSYNC with the last position, the snapshot
 * in either transfer form, then the command stream with periodic `REPLCONF ACK`s. It reconnects with capped
 * exponential backoff until stopped or until an error that retrying cannot fix.
 */
export class ReplicaLink {
  private master: string;
  private address: MasterAddress | null = null;
  private handshakeMaster: MasterAddress | null = null;
  private socket: net.Socket | null = null;
  private stopping = false;
  private paused = false;
  /** Set by requestHandshake: the next session starts although the link is paused. */
  private handshakeRequested = false;
  private mode: Mode = 'handshake';
  private lineParts: Buffer[] = [];
  private pendingReply: { resolve: (line: string) => void; reject: (e: Error) => void } | null = null;
  private replyQueue: string[] = [];
  private expectingPsyncReply = false;
  private snapshotRemaining = 0;
  private eofMark: Buffer | null = null;
  private eofTail: Buffer = Buffer.alloc(0);
  private reader: RespReader | null = null;
  private lastDataAt = 0;
  /** Bytes received in the current session: none before a failure suggests a TLS port dialled in plaintext. */
  private sessionBytes = 0;
  /**
   * Offset of the last `REPLCONF GETACK` whose answer is not yet complete: with durable ACKs the first answer may
   * lag behind it, so every durable advance is acknowledged at once until the ACKed offset covers it (WAIT returns
   * as soon as the sinks have the data, not at the next 1 s tick).
   */
  private ackWantedThrough = -1;
  private sessionError: Error | null = null;
  private wake: (() => void) | null = null;
  private lastFullSyncAt = 0;
  private resumedAt = 0;
  private resumeWaiter: (() => void) | null = null;
  /** `$<len>` of the snapshot being received; null for a diskless (`$EOF:`) one, whose size is unknown. */
  private snapshotTotal: number | null = null;
  /** Replication offset just past the last complete command received, kept across reconnects. */
  private lastReceivedOffset: number | null = null;
  /** Counts of what the link has seen, for metrics and tests. */
  readonly stats = {
    connects: 0,
    fullResyncs: 0,
    partialResyncs: 0,
    snapshotBytes: 0,
    streamBytes: 0,
    /** Links the master closed while redtail held back for slow sinks (output buffer limit, most likely). */
    droppedWhileHoldingBack: 0,
  };

  constructor(private readonly opts: ReplicaLinkOptions) {
    this.master = opts.locator.describe();
    opts.locator.watch?.(() => this.reconnect('the master moved'));
  }

  /** Runs until `stop()` (resolves) or a fatal error (rejects). */
  async run(): Promise<void> {
    let attempt = 0;
    const initial = this.opts.backoffInitialMs ?? 100;
    const max = this.opts.backoffMaxMs ?? 5_000;
    while (!this.stopping) {
      let streamed = false;
      try {
        streamed = await this.session();
      } catch (err) {
        if (isFatal(err)) throw err;
        if (!this.stopping)
          this.opts.logger.warn(
            { err: (err as Error).message, master: this.master },
            'replication link lost',
          );
      }
      if (this.stopping) break;
      if (streamed) attempt = 0;
      // Reconnecting while the sinks are still behind would only refill the master's buffer for us: first let
      // the pipeline drain (it resumes the link below its low-water mark).
      await this.waitUntilResumed();
      // Full jitter keeps many redtail instances from reconnecting to a restarted master in lockstep.
      const delay = Math.min(max, initial * 2 ** attempt);
      attempt = Math.min(attempt + 1, 20);
      await this.interruptibleSleep(delay * (0.5 + Math.random() / 2));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.resumeWaiter?.();
    await this.opts.locator.close();
    const s = this.socket;
    if (s && !s.destroyed) {
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
    }
  }

  /**
   * The master of the last completed handshake: the server the stream comes from, so its replication offsets are
   * the stream's. It is kept while the link reconnects, since most drops end at the same master; a failover
   * replaces it at the first handshake with the new one. Null before the first handshake.
   */
  get connectedMaster(): MasterAddress | null {
    return this.handshakeMaster;
  }

  /** Stops reading from the master (backpressure): the kernel buffers and then the master's output buffer fill. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastDataAt = Date.now();
    this.resumedAt = this.lastDataAt;
    this.socket?.resume();
    this.resumeWaiter?.();
  }

  /** Ends the current connection (not the link): the next attempt locates the master again. */
  reconnect(reason: string): void {
    const s = this.socket;
    if (s && !s.destroyed) {
      this.opts.logger.info({ master: this.master, reason }, 'reconnecting');
      this.sessionError ??= new Error(`reconnecting: ${reason}`);
      s.destroy();
    }
    this.wake?.();
  }

  /**
   * Connects to the master now, even while the sinks hold the stream back; the stream stays unread after the
   * handshake until the pipeline resumes the link. For a sink that cannot drain without the current master: the
   * Postgres sink's fetches after a failover go to `connectedMaster`, which only a handshake updates, while the link
   * would otherwise wait for that very sink before reconnecting.
   */
  requestHandshake(reason: string): void {
    if (!this.paused || this.handshakeRequested || this.stopping) return;
    if (this.socket && !this.socket.destroyed) return;
    this.handshakeRequested = true;
    this.opts.logger.info({ reason }, 'connecting to the master while the sinks hold the stream back');
    this.resumeWaiter?.();
  }

  private waitUntilResumed(): Promise<void> {
    if (!this.paused || this.stopping || this.handshakeRequested) return Promise.resolve();
    return new Promise((resolve) => {
      this.resumeWaiter = () => {
        this.resumeWaiter = null;
        resolve();
      };
    });
  }

  /** Where the link is, for /readyz, the metrics and the progress line (src/observe/sources.ts). */
  get status(): LinkStatus {
    const connected = this.socket !== null && !this.socket.destroyed;
    const phase: LinkPhase = this.stopping
      ? 'stopped'
      : !connected
        ? 'connecting'
        : this.mode === 'handshake'
          ? 'handshake'
          : this.mode === 'stream'
            ? 'streaming'
            : 'snapshot';
    return {
      phase,
      receivedOffset: this.reader?.offset ?? this.lastReceivedOffset,
      snapshotBytesTotal: this.snapshotTotal,
    };
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Called when the acknowledged offset advanced: answers a pending `REPLCONF GETACK` at once (WAIT latency). */
  ackAdvanced(): void {
    if (this.ackWantedThrough >= 0) this.sendAck();
  }

  private interruptibleSleep(ms: number): Promise<void> {
    const ac = new AbortController();
    this.wake = () => ac.abort();
    return sleep(ms, undefined, { signal: ac.signal }).then(
      () => {
        this.wake = null;
      },
      () => {
        this.wake = null;
      },
    );
  }

  /** One connection: handshake, snapshot, stream. Resolves true if it reached the stream before ending. */
  private async session(): Promise<boolean> {
    const { handler, logger } = this.opts;
    this.resetSessionState();
    this.handshakeRequested = false;
    if (!handler.resumePosition()) await this.respectFullSyncInterval();
    const master = await this.opts.locator.locate(handler.resumePosition());
    this.address = master;
    this.master = describeMaster(master);
    const socket = await this.connect();
    this.stats.connects++;
    let reachedStream = false;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // Like Redis's replica (replicationCron cancels a handshake silent for repl-timeout), a master that stops
    // answering mid-handshake is given up on: otherwise a hung server would hold the link forever. A master
    // preparing a snapshot is not silent: it sends a newline every second until the transfer starts.
    const timers: NodeJS.Timeout[] = [setInterval(() => this.checkTimeout(), 1_000)];
    try {
      const pong = await this.request(['PING']);
      // A master with a password answers PING with NOAUTH before AUTH; Redis's replica accepts that too.
      if (pong.startsWith('-') && !/^-(NOAUTH|NOPERM|ERR operation not permitted)/.test(pong))
        throw new HandshakeError(this.master, 'PING', pong);
      if (master.password !== undefined) {
        const args = master.username ? ['AUTH', master.username, master.password] : ['AUTH', master.password];
        const r = await this.request(args);
        if (r.startsWith('-')) throw this.authError(r);
      }
      await this.optionalReplconf(['REPLCONF', 'listening-port', String(this.opts.listeningPort ?? 0)]);
      if (this.opts.announceIp) await this.optionalReplconf(['REPLCONF', 'ip-address', this.opts.announceIp]);
      await this.optionalReplconf(['REPLCONF', 'capa', 'eof', 'capa', 'psync2']);
      await this.optionalReplconf(['REPLCONF', 'version', this.opts.replicaVersion ?? '9.0.0']);

      const pos = handler.resumePosition();
      const psync = pos ? ['PSYNC', pos.replid, String(pos.offset + 1)] : ['PSYNC', '?', '-1'];
      // A master with diskless sync answers only when its snapshot starts (after repl-diskless-sync-delay, 5 s by
      // default), so say what is awaited instead of falling silent.
      logger.info(
        { master: this.master, requested: psync.slice(1).join(' ') },
        'PSYNC sent; waiting for the master',
      );
      this.expectingPsyncReply = true;
      const reply = await this.request(psync);
      if (reply.startsWith('-')) {
        if (/^-(NOAUTH|NOPERM|WRONGPASS)/.test(reply)) throw this.authError(reply);
        throw new HandshakeError(this.master, 'PSYNC', reply);
      }
      this.handshakeMaster = master;
      logger.info(
        { master: this.master, reply, requested: psync.slice(1).join(' ') },
        'replication handshake done',
      );
      // The sinks may hold back (a handshake asked for by requestHandshake, or a pause since the reconnect began):
      // leave the stream unread until they resume the link, as pause() does for an established one.
      if (this.paused) socket.pause();

      timers.push(setInterval(() => this.sendAck(), this.opts.ackIntervalMs ?? 1_000));
      reachedStream = true;
      await closed;
      if (this.sessionError) throw this.sessionError;
      this.noteRemoteClose();
      return reachedStream;
    } catch (err) {
      socket.destroy();
      await closed;
      const e = this.sessionError ?? err;
      // A TLS port resets a plaintext client at its first command, without a reply redtail could show: ask the
      // port for a TLS handshake to say so, instead of retrying forever with "connection reset".
      if (
        !master.tls &&
        this.sessionBytes === 0 &&
        !isFatal(e) &&
        !this.stopping &&
        (await speaksTls(master.host, master.port))
      )
        throw new FatalLinkError(tlsPortMessage('master', this.master));
      throw e;
    } finally {
      for (const t of timers) clearInterval(t);
      this.socket = null;
      if (this.pendingReply) this.pendingReply.reject(new Error('connection closed'));
      this.pendingReply = null;
    }
  }

  private resetSessionState(): void {
    this.mode = 'handshake';
    this.lineParts = [];
    this.replyQueue = [];
    this.pendingReply = null;
    this.expectingPsyncReply = false;
    this.snapshotRemaining = 0;
    this.eofMark = null;
    this.eofTail = Buffer.alloc(0);
    this.lastReceivedOffset = this.reader?.offset ?? this.lastReceivedOffset;
    this.reader = null;
    this.ackWantedThrough = -1;
    this.sessionError = null;
    this.sessionBytes = 0;
  }

  /** Called when the master closed a streaming link without a reason we caused. */
  private noteRemoteClose(): void {
    if (this.mode === 'snapshot-header' || this.mode === 'snapshot-length' || this.mode === 'snapshot-eof') {
      // Redis frees the replicas waiting on a BGSAVE that failed or was killed ("SYNC failed. BGSAVE child returned
      // an error"); a FLUSHALL or FLUSHDB during the save kills it, so this happens on healthy masters too.
      this.opts.logger.warn(
        { master: this.master },
        "the master closed the link before the snapshot was complete: its snapshot save failed or was aborted (a FLUSHALL during the save aborts it; the master's log says why). Retrying with a new full sync",
      );
      return;
    }
    // A paused socket sees the master's close only after reading resumes and the kernel buffer is drained.
    if (this.paused || Date.now() - this.resumedAt < 30_000) {
      this.stats.droppedWhileHoldingBack++;
      this.opts.logger.error(
        { master: this.master, times: this.stats.droppedWhileHoldingBack },
        'the master closed the link while redtail was holding back for slow sinks: its client-output-buffer-limit for replicas was probably exceeded. Raise it (and repl-backlog-size, so a partial resync stays possible) or make the sinks faster; redtail reconnects once the sinks have caught up',
      );
    }
  }

  private async respectFullSyncInterval(): Promise<void> {
    const min = this.opts.minFullSyncIntervalMs ?? 30_000;
    const wait = this.lastFullSyncAt + min - Date.now();
    if (this.lastFullSyncAt === 0 || wait <= 0) return;
    this.opts.logger.warn(
      { master: this.master, waitMs: wait },
      'another full sync so soon would load the master: waiting for the minimum interval between full syncs',
    );
    await this.interruptibleSleep(wait);
    if (this.stopping) throw new Error('stopped');
  }

  /** TCP, or TLS for rediss://; TLS failures that retrying cannot fix reject with a FatalLinkError that says why. */
  private connect(): Promise<net.Socket> {
    const { host, port, tls: t } = this.address!;
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const socket: net.Socket = t
        ? tls.connect({ host, port, ...tlsOptionsFor(host, t) })
        : net.connect({ host, port });
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      let tcpConnected = false;
      socket.once('connect', () => {
        tcpConnected = true;
      });
      const timer = setTimeout(() => {
        socket.destroy();
        if (!t || !tcpConnected) {
          reject(new Error(`connecting to master ${this.master} timed out`));
          return;
        }
        // A plaintext Redis port takes the TLS ClientHello for the start of a command and waits for the rest.
        answersPlaintext(host, port).then((plaintext) =>
          reject(
            plaintext
              ? new FatalLinkError(plaintextPortMessage('master', this.master))
              : new Error(
                  `the TLS handshake with master ${this.master} did not complete within ${timeoutMs} ms`,
                ),
          ),
        );
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(
          (t && explainTlsError(err, 'master', this.master, t)) ||
            new Error(
              `cannot connect to master ${this.master}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
            ),
        );
      });
      socket.once(t ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.on('error', (err) => {
          // With TLS 1.3 the server's verdict on the client certificate arrives after the handshake, as an alert.
          this.sessionError ??=
            (t && explainTlsError(err, 'master', this.master, t)) ||
            new Error(`connection to master ${this.master} failed: ${err.message}`);
        });
        socket.on('data', (chunk: Buffer) => this.onData(chunk));
        socket.once('close', () => {
          const p = this.pendingReply;
          this.pendingReply = null;
          p?.reject(
            this.sessionError ??
              new Error(`master ${this.master} closed the connection during the handshake`),
          );
        });
        this.socket = socket;
        this.lastDataAt = Date.now();
        // Not paused here even if the sinks hold back: the handshake must read its replies. session() pauses the
        // socket right after the PSYNC reply instead.
        resolve(socket);
      });
    });
  }

  private authError(reply: string): AuthError {
    const hint = /without any password|no password is set/i.test(reply)
      ? 'the master has no password: remove it from the master URL'
      : /NOPERM/.test(reply)
        ? 'the user needs permission for PSYNC, REPLCONF and PING (e.g. +psync +replconf +ping)'
        : /NOAUTH/.test(reply)
          ? 'the master requires a password: give it in the master URL, redis://[user:]password@host:port'
          : 'check the user name and password in the master URL';
    return new AuthError(this.master, reply.replace(/^-/, ''), hint);
  }

  /** REPLCONF options are advisory: Redis's replica carries on when the master does not know one. */
  private async optionalReplconf(args: string[]): Promise<void> {
    const r = await this.request(args);
    if (/^-(NOAUTH|NOPERM|WRONGPASS)/.test(r)) throw this.authError(r);
    if (r.startsWith('-'))
      this.opts.logger.debug(
        { master: this.master, option: args[1], reply: r },
        'master ignored REPLCONF option',
      );
  }

  /** Sends one command and waits for its one-line reply; the handshake never pipelines (the master refuses PSYNC then). */
  private request(args: string[]): Promise<string> {
    const socket = this.socket!;
    return new Promise((resolve, reject) => {
      this.pendingReply = { resolve, reject };
      socket.write(encodeCommand(args));
      if (this.replyQueue.length > 0) this.deliverReply(this.replyQueue.shift()!);
    });
  }

  private deliverReply(line: string): void {
    const p = this.pendingReply;
    if (!p) {
      this.replyQueue.push(line);
      return;
    }
    this.pendingReply = null;
    p.resolve(line);
  }

  private fail(err: Error): void {
    this.sessionError ??= err;
    this.socket?.destroy();
  }

  private onData(chunk: Buffer): void {
    this.lastDataAt = Date.now();
    this.sessionBytes += chunk.length;
    try {
      this.consume(chunk);
    } catch (err) {
      // Whatever breaks while decoding what the master sent (protocol, snapshot format, event handling) would break
      // again on every retry and each retry may cost the master a full sync: stop instead of looping.
      const e = err as Error & { fatal?: boolean };
      if (e && typeof e === 'object') e.fatal = true;
      this.fail(e);
    }
  }

  private consume(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.mode) {
        case 'handshake':
        case 'snapshot-header': {
          const nl = chunk.indexOf(LF, pos);
          if (nl === -1) {
            this.lineParts.push(chunk.subarray(pos));
            if (this.lineParts.reduce((n, b) => n + b.length, 0) > 4096)
              throw new FatalLinkError(
                `master ${this.master} sent an overlong reply line during the handshake`,
              );
            return;
          }
          this.lineParts.push(chunk.subarray(pos, nl));
          const raw = this.lineParts.length === 1 ? this.lineParts[0]! : Buffer.concat(this.lineParts);
          this.lineParts = [];
          pos = nl + 1;
          const line = raw.toString('latin1').replace(/\r$/, '');
          // Empty lines are the keep-alives a master sends while it prepares the snapshot.
          if (line === '') break;
          if (this.mode === 'handshake') this.handshakeLine(line);
          else this.snapshotHeader(line);
          break;
        }
        case 'snapshot-length': {
          const n = Math.min(this.snapshotRemaining, len - pos);
          this.snapshotRemaining -= n;
          this.stats.snapshotBytes += n;
          this.opts.handler.snapshotData(chunk.subarray(pos, pos + n));
          pos += n;
          if (this.snapshotRemaining === 0) this.snapshotDone();
          break;
        }
        case 'snapshot-eof':
          pos += this.consumeEofSnapshot(chunk.subarray(pos));
          break;
        case 'stream':
          this.stats.streamBytes += len - pos;
          this.reader!.feed(pos === 0 ? chunk : chunk.subarray(pos));
          return;
      }
    }
  }

  private handshakeLine(line: string): void {
    if (this.expectingPsyncReply) {
      this.expectingPsyncReply = false;
      const parts = line.split(' ');
      // Switch modes before the promise settles: snapshot or stream bytes may follow in this very chunk.
      if (parts[0] === '+FULLRESYNC' && parts.length >= 3) {
        const replid = parts[1]!;
        const offset = Number(parts[2]);
        this.stats.fullResyncs++;
        this.lastFullSyncAt = Date.now();
        this.opts.handler.fullResync(replid, offset);
        this.reader = this.newReader(offset);
        this.mode = 'snapshot-header';
      } else if (parts[0] === '+CONTINUE') {
        const pos = this.opts.handler.resumePosition()!;
        const replid = parts[1] ?? pos.replid;
        this.stats.partialResyncs++;
        this.opts.handler.partialResync(replid, pos.offset);
        this.reader = this.newReader(pos.offset);
        this.mode = 'stream';
      } else if (!line.startsWith('-')) {
        throw new FatalLinkError(
          `master ${this.master} answered PSYNC with '${line}', which is not a reply redtail knows`,
        );
      }
    }
    this.deliverReply(line);
  }

  private newReader(offset: number): RespReader {
    return new RespReader((args, end) => this.streamCommand(args, end), offset);
  }

  private streamCommand(args: Buffer[], end: number): void {
    this.opts.handler.command(args, end);
    const name = args[0]!;
    // REPLCONF GETACK * asks for an ACK now (WAIT, failover); answer after the command counted into the offset.
    if (name.length === 8 && name.toString('latin1').toUpperCase() === 'REPLCONF' && args.length >= 2) {
      if (args[1]!.toString('latin1').toUpperCase() === 'GETACK') {
        this.ackWantedThrough = end;
        this.sendAck();
      }
    }
  }

  private snapshotHeader(line: string): void {
    if (!line.startsWith('$'))
      throw new FatalLinkError(
        `master ${this.master} sent '${line.slice(0, 60)}' where the snapshot should start`,
      );
    if (line.startsWith('$EOF:')) {
      const mark = line.slice(5);
      if (mark.length !== EOF_MARK_LEN)
        throw new FatalLinkError(`master ${this.master} sent a malformed $EOF: mark`);
      this.eofMark = Buffer.from(mark, 'latin1');
      this.snapshotTotal = null;
      this.mode = 'snapshot-eof';
      return;
    }
    const n = Number(line.slice(1));
    if (!Number.isSafeInteger(n) || n < 0)
      throw new FatalLinkError(`master ${this.master} announced an invalid snapshot length '${line}'`);
    this.snapshotRemaining = n;
    this.snapshotTotal = n;
    this.mode = 'snapshot-length';
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
      this.eofTail = joined.subarray(joined.length - keep);
    }
    return data.length;
  }

  private emitSnapshot(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.stats.snapshotBytes += bytes.length;
    this.opts.handler.snapshotData(bytes);
  }

  private snapshotDone(): void {
    this.opts.handler.snapshotEnd();
    this.mode = 'stream';
    // A master that sent a diskless snapshot holds the command stream back until the replica's first ACK
    // (Redis: repl_start_cmd_stream_on_ack); sending one after any snapshot is harmless.
    this.sendAck();
  }

  private sendAck(): void {
    const s = this.socket;
    if (!s || s.destroyed || this.mode !== 'stream') return;
    const offset = this.opts.handler.ackOffset();
    if (offset >= this.ackWantedThrough) this.ackWantedThrough = -1;
    s.write(encodeCommand(['REPLCONF', 'ACK', String(offset)]));
  }

  private checkTimeout(): void {
    const limit = this.opts.readTimeoutMs ?? 60_000;
    // While the sinks hold the stream back the master is silent because redtail does not read; a handshake is read
    // even then (requestHandshake), so silence there still counts.
    if (this.paused && this.mode !== 'handshake') return;
    const idle = Date.now() - this.lastDataAt;
    if (idle > limit) this.fail(new ReplicationTimeoutError(this.master, idle));
  }
}

export function encodeCommand(args: string[]): Buffer {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return Buffer.from(out);
}
