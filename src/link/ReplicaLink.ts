import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { defaults, fixed } from '../config/defaults.js';
import { isFatal, RedtailError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { backoffDelay } from '../retry.js';
import { FatalLinkError, ReplicationTimeoutError } from './errors.js';
import { describeMaster, type MasterAddress } from './MasterAddress.js';
import type { MasterLocator } from './MasterLocator.js';
import { describeOutputBufferLimit } from './outputBuffer.js';
import { type Phase, ReplicationProtocol, type StreamTarget } from './ReplicationProtocol.js';
import {
  answersPlaintext,
  explainTlsError,
  plaintextPortMessage,
  speaksTls,
  tlsOptionsFor,
  tlsPortMessage,
} from './tls.js';

export type { StreamTarget } from './ReplicationProtocol.js';

export interface ReplicaLinkOptions {
  /** Finds the master before each connection (a fixed address, candidates, or Sentinel). */
  locator: MasterLocator;
  /** Where the stream goes: the replicator, or the spool in front of it. */
  target: StreamTarget;
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
  /**
   * The target copies whatever it keeps before its call returns (the spool does: it writes every byte out at
   * once), so plaintext connections can read into one reused buffer instead of allocating a chunk per read: reading
   * at wire speed then makes no garbage.
   */
  targetCopies?: boolean;
}

export type LinkPhase = 'connecting' | 'handshake' | 'snapshot' | 'streaming' | 'stopped';

export interface LinkStatus {
  phase: LinkPhase;
  /** The master's replication offset just past the last complete command received (null before any stream). */
  receivedOffset: number | null;
  /** Size of the snapshot being (or last) received when the master announced it (`$<len>`), else null. */
  snapshotBytesTotal: number | null;
}

/** How long after reading resumed a master's close still counts as caused by holding back (the kernel's buffer drains first). */
const HELD_BACK_WINDOW_MS = 30_000;

/**
 * The socket driver of a replication link: locates and dials the master (TCP or TLS), runs one
 * `ReplicationProtocol` per connection, owns the timers (read timeout, ACK interval), pauses reading for
 * backpressure, and reconnects with capped exponential backoff until stopped or until an error that retrying cannot
 * fix. Everything about the bytes themselves is in the protocol core.
 */
export class ReplicaLink {
  private master: string;
  private address: MasterAddress | null = null;
  private handshakeMaster: MasterAddress | null = null;
  private socket: net.Socket | null = null;
  private protocol: ReplicationProtocol | null = null;
  private stopping = false;
  private paused = false;
  /** Set by requestHandshake: the next session starts although the link is paused. */
  private handshakeRequested = false;
  private lastDataAt = 0;
  /** Bytes received in the current session: none before a failure suggests a TLS port dialled in plaintext. */
  private sessionBytes = 0;
  private sessionError: Error | null = null;
  private wake: (() => void) | null = null;
  private lastFullSyncAt = 0;
  private resumedAt = 0;
  private resumeWaiter: (() => void) | null = null;
  /** Where a connection's bytes go (the current session's protocol). */
  private onChunk: (chunk: Buffer) => void = () => {};
  private readBuffer: Buffer | null = null;
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
      await this.interruptibleSleep(
        backoffDelay(
          attempt,
          this.opts.backoffInitialMs ?? fixed.link.backoffInitialMs,
          this.opts.backoffMaxMs ?? fixed.link.backoffMaxMs,
        ),
      );
      attempt++;
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

  /** Whether the current connection is streaming (past the handshake and the snapshot). */
  get phase(): Phase | 'offline' {
    return this.socket && !this.socket.destroyed && this.protocol ? this.protocol.phase : 'offline';
  }

  /** Offset just past the last complete command received from the master in this session (0 before the stream). */
  get receivedOffset(): number {
    return this.protocol?.offset ?? 0;
  }

  /** Where the link is, for /readyz, the metrics and the progress line (src/observe/sources.ts). */
  get status(): LinkStatus {
    const connected = this.socket !== null && !this.socket.destroyed && this.protocol !== null;
    const p = this.protocol?.phase;
    const phase: LinkPhase = this.stopping
      ? 'stopped'
      : !connected
        ? 'connecting'
        : p === 'stream'
          ? 'streaming'
          : (p ?? 'connecting');
    if (p === 'stream') this.lastReceivedOffset = this.protocol!.offset;
    return { phase, receivedOffset: this.lastReceivedOffset, snapshotBytesTotal: this.snapshotTotal };
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

  get isPaused(): boolean {
    return this.paused;
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

  /** Called when the acknowledged offset advanced: answers a pending `REPLCONF GETACK` at once (WAIT latency). */
  ackAdvanced(): void {
    if (this.socket && !this.socket.destroyed) this.protocol?.ackAdvanced();
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

  private interruptibleSleep(ms: number): Promise<void> {
    const ac = new AbortController();
    this.wake = () => ac.abort();
    const done = () => {
      this.wake = null;
    };
    return sleep(ms, undefined, { signal: ac.signal }).then(done, done);
  }

  /** One connection: handshake, snapshot, stream. Resolves true if it reached the stream before ending. */
  private async session(): Promise<boolean> {
    const { target } = this.opts;
    this.sessionError = null;
    this.sessionBytes = 0;
    this.handshakeRequested = false;
    if (!target.resumePosition()) await this.respectFullSyncInterval();
    const master = await this.opts.locator.locate(target.resumePosition());
    this.address = master;
    this.master = describeMaster(master);
    const socket = await this.connect(master);
    this.stats.connects++;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let handshakeDone: () => void = () => {};
    const handshake = new Promise<void>((resolve) => {
      handshakeDone = resolve;
    });
    const protocol = this.newProtocol(master, socket, () => handshakeDone());
    this.protocol = protocol;
    // Like Redis's replica (replicationCron cancels a handshake silent for repl-timeout), a master that stops
    // answering mid-handshake is given up on: otherwise a hung server would hold the link forever. A master
    // preparing a snapshot is not silent: it sends a newline every second until the transfer starts.
    const timers: NodeJS.Timeout[] = [setInterval(() => this.checkTimeout(protocol), 1_000)];
    try {
      this.onChunk = (chunk) => this.onData(protocol, chunk);
      protocol.start();
      await Promise.race([handshake, closed]);
      if (protocol.phase === 'handshake') throw this.sessionError ?? this.closedInHandshake();
      this.handshakeMaster = master;
      // The sinks may hold back (a handshake asked for by requestHandshake, or a pause since the reconnect began):
      // leave the stream unread until they resume the link, as pause() does for an established one.
      if (this.paused) socket.pause();
      timers.push(setInterval(() => protocol.sendAck(), this.opts.ackIntervalMs ?? fixed.link.ackIntervalMs));
      await closed;
      // The master's close of a replica it drops arrives as a plain close or, when it discarded unread data, as a
      // reset (ECONNRESET): both are the master's doing, unlike our own timeouts, reconnects and decoding errors.
      const e = this.sessionError as (Error & { code?: string }) | null;
      if (!this.stopping && (!e || /ECONNRESET|EPIPE/.test(e.message)))
        await this.noteRemoteClose(protocol.phase, protocol.snapshotStarted);
      if (e) throw e;
      return true;
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
      this.stats.snapshotBytes += protocol.counts.snapshotBytes;
      this.stats.streamBytes += protocol.counts.streamBytes;
      this.socket = null;
    }
  }

  private newProtocol(
    master: MasterAddress,
    socket: net.Socket,
    onHandshake: () => void,
  ): ReplicationProtocol {
    const { logger } = this.opts;
    return new ReplicationProtocol(
      {
        master: this.master,
        username: master.username,
        password: master.password,
        listeningPort: this.opts.listeningPort ?? 0,
        announceIp: this.opts.announceIp,
        replicaVersion: this.opts.replicaVersion ?? '9.0.0',
      },
      this.opts.target,
      {
        send: (bytes) => {
          if (!socket.destroyed) socket.write(bytes);
        },
        // A master with diskless sync answers only when its snapshot starts (after repl-diskless-sync-delay, 5 s by
        // default), so say what is awaited instead of falling silent.
        psyncSent: (requested) =>
          logger.info({ master: this.master, requested }, 'PSYNC sent; waiting for the master'),
        handshakeDone: (reply, requested) => {
          if (reply.startsWith('+FULLRESYNC')) {
            this.stats.fullResyncs++;
            this.lastFullSyncAt = Date.now();
          } else {
            this.stats.partialResyncs++;
          }
          logger.info({ master: this.master, reply, requested }, 'replication handshake done');
          onHandshake();
        },
        snapshotStart: (size) => {
          this.snapshotTotal = size;
        },
        optionIgnored: (option, reply) =>
          logger.debug({ master: this.master, option, reply }, 'master ignored REPLCONF option'),
      },
    );
  }

  private closedInHandshake(): Error {
    return new Error(`master ${this.master} closed the connection during the handshake`);
  }

  private onData(protocol: ReplicationProtocol, chunk: Buffer): void {
    this.lastDataAt = Date.now();
    this.sessionBytes += chunk.length;
    try {
      protocol.feed(chunk);
    } catch (err) {
      // Our own errors say whether a retry can help (a HandshakeError for a master still loading can). Anything
      // else that breaks while decoding what the master sent (protocol, snapshot format, event handling) would
      // break again on every retry, and each retry may cost the master a full sync: stop instead of looping.
      this.fail(err instanceof RedtailError ? err : new FatalStreamError(err));
    }
  }

  private fail(err: Error): void {
    this.sessionError ??= err;
    this.socket?.destroy();
  }

  /** Called when the master closed the connection after the handshake, without a reason we caused. */
  private async noteRemoteClose(phase: Phase, snapshotStarted: boolean): Promise<void> {
    // A paused socket sees the master's close only after reading resumes and the kernel buffer is drained.
    const heldBack = this.paused || Date.now() - this.resumedAt < HELD_BACK_WINDOW_MS;
    if (heldBack) {
      this.stats.droppedWhileHoldingBack++;
      const limits = this.address ? await describeOutputBufferLimit(this.address) : null;
      this.opts.logger.error(
        { master: this.master, phase, times: this.stats.droppedWhileHoldingBack, ...limits },
        `the master closed the link while redtail was not reading (${phase === 'snapshot' ? 'during the snapshot transfer' : 'the sinks were behind'}): the replica output buffer passed the master's client-output-buffer-limit for replicas${limits?.limit ? ` ('${limits.limit}')` : ''}. Enable the spool (spool.dir) so redtail reads at wire speed, or raise that limit on the master (and repl-backlog-size, so a partial resync stays possible); redtail reconnects once the sinks have caught up`,
      );
      return;
    }
    if (phase !== 'snapshot') return;
    if (!snapshotStarted) {
      // While the master saves the snapshot, the writes it takes meanwhile pile up in this replica's output buffer
      // (Redis 7 shows it as omem of a client in cmd=psync), and the limit applies then too; nothing tells the two
      // causes apart from here, so say both and what the master's log shows for each.
      const limits = this.address ? await describeOutputBufferLimit(this.address) : null;
      this.opts.logger.warn(
        { master: this.master, ...limits },
        `the master closed the link before the snapshot transfer began: either its snapshot save failed or was aborted (a FLUSHALL during the save aborts it; its log then says "SYNC failed" or "Background saving terminated"), or the writes it took during the save passed its client-output-buffer-limit for replicas${limits?.limit ? ` ('${limits.limit}')` : ''} (its log then says "overcoming of output buffer limits": raise that limit, or write less during a full sync). Retrying with a new full sync`,
      );
      return;
    }
    // Redis frees the replicas waiting on a BGSAVE that failed or was killed ("SYNC failed. BGSAVE child returned
    // an error"); a FLUSHALL or FLUSHDB during the save kills it, so this happens on healthy masters too.
    this.opts.logger.warn(
      { master: this.master },
      "the master closed the link before the snapshot was complete: its snapshot save failed or was aborted (a FLUSHALL during the save aborts it; the master's log says why). Retrying with a new full sync",
    );
  }

  private async respectFullSyncInterval(): Promise<void> {
    const min = this.opts.minFullSyncIntervalMs ?? defaults.link.minFullSyncIntervalMs;
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
  private connect(address: MasterAddress): Promise<net.Socket> {
    const t = address.tls;
    const timeoutMs = this.opts.connectTimeoutMs ?? defaults.link.connectTimeoutMs;
    return new Promise((resolve, reject) => {
      const socket = this.openSocket(address);
      let tcpConnected = false;
      socket.once('connect', () => {
        tcpConnected = true;
      });
      const timer = setTimeout(() => {
        socket.destroy();
        void this.connectTimeoutError(address, tcpConnected, timeoutMs).then(reject);
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
        this.socket = socket;
        this.lastDataAt = Date.now();
        // Not paused here even if the sinks hold back: the handshake must read its replies. session() pauses the
        // socket right after the PSYNC reply instead.
        resolve(socket);
      });
    });
  }

  /**
   * The socket to the master. A plaintext socket whose target copies what it keeps (`targetCopies`: the spool) reads
   * into one reused buffer (`onread`); TLS sockets cannot take `onread`, so they, and targets that keep the chunks
   * they are given, read through 'data' events (a new buffer per read).
   */
  private openSocket({ host, port, tls: t }: MasterAddress): net.Socket {
    const socket: net.Socket = t
      ? tls.connect({ host, port, ...tlsOptionsFor(host, t) })
      : this.opts.targetCopies
        ? net.connect({
            host,
            port,
            onread: {
              buffer: () => {
                this.readBuffer ??= Buffer.allocUnsafe(256 * 1024);
                return this.readBuffer;
              },
              callback: (n: number, buf: Uint8Array) => {
                this.onChunk(Buffer.from(buf.buffer, buf.byteOffset, n));
                return true;
              },
            },
          })
        : net.connect({ host, port });
    if (t || !this.opts.targetCopies) socket.on('data', (chunk: Buffer) => this.onChunk(chunk));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    return socket;
  }

  /** Why connecting timed out: no TCP connection, a TLS handshake that stalled, or TLS sent to a plaintext port. */
  private async connectTimeoutError(
    { host, port, tls: t }: MasterAddress,
    tcpConnected: boolean,
    timeoutMs: number,
  ): Promise<Error> {
    if (!t || !tcpConnected) return new Error(`connecting to master ${this.master} timed out`);
    // A plaintext Redis port takes the TLS ClientHello for the start of a command and waits for the rest.
    return (await answersPlaintext(host, port))
      ? new FatalLinkError(plaintextPortMessage('master', this.master))
      : new Error(`the TLS handshake with master ${this.master} did not complete within ${timeoutMs} ms`);
  }

  private checkTimeout(protocol: ReplicationProtocol): void {
    const limit = this.opts.readTimeoutMs ?? defaults.link.readTimeoutMs;
    // While the sinks hold the stream back the master is silent because redtail does not read; a handshake is read
    // even then (requestHandshake), so silence there still counts.
    if (this.paused && protocol.phase !== 'handshake') return;
    const idle = Date.now() - this.lastDataAt;
    if (idle > limit) this.fail(new ReplicationTimeoutError(this.master, idle));
  }
}

/** Something broke while handling what the master sent; retrying would break the same way. */
export class FatalStreamError extends RedtailError {
  override readonly name = 'FatalStreamError';
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { fatal: true, cause });
  }
}
