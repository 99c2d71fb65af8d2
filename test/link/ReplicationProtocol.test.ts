/*
 * Transcript tests of the replication protocol core: what a real Redis master sends to a replica (replication.c:
 * syncWithMaster, slaveTryPartialResynchronization, readSyncBulkPayload on the replica side; replicationCron's
 * keep-alive newlines, the $len / $EOF: transfers and +CONTINUE on the master side), fed to the core at every chunk
 * size and cut at every byte, checking what it sends back and what it hands to its StreamTarget.
 */
import { describe, expect, it } from 'vitest';
import { isFatal, RedtailError } from '../../src/errors.js';
import { AuthError, FatalLinkError, HandshakeError } from '../../src/link/errors.js';
import {
  type Phase,
  type ProtocolEvents,
  type ProtocolSettings,
  ReplicationProtocol,
  type StreamTarget,
} from '../../src/link/ReplicationProtocol.js';
import { prng } from '../harness/prng.js';
import { respCommand } from '../resp/encode.js';

/** A RESP multibulk as Redis writes it, built rather than taken from the core's own encoder. */
const resp = respCommand;

const latin1 = (b: Buffer) => b.toString('latin1');
const ack = (offset: number) => resp('REPLCONF', 'ACK', String(offset));

/** Like Redis's getRandomHexChars: run ids, replication ids and $EOF: marks are 40 random hex characters. */
function hex40(seed: number): string {
  const r = prng(seed);
  let s = '';
  for (let i = 0; i < 40; i++) s += Math.floor(r() * 16).toString(16);
  return s;
}

const REPLID = hex40(1);
const NEW_REPLID = hex40(2);
const MARK = hex40(3);

const BASE: ProtocolSettings = { master: '127.0.0.1:6390', listeningPort: 6380, replicaVersion: '9.0.0' };

type Call =
  | { t: 'fullResync'; replid: string; offset: number }
  | { t: 'partialResync'; replid: string; offset: number }
  | { t: 'snapshotStart'; size: number | null }
  | { t: 'snapshotData'; bytes: Buffer }
  | { t: 'snapshotEnd' }
  | { t: 'commands'; bytes: Buffer; end: number }
  | { t: 'send'; bytes: Buffer }
  | { t: 'psyncSent'; requested: string }
  | { t: 'handshakeDone'; reply: string; requested: string }
  | { t: 'optionIgnored'; option: string; reply: string };

/** Records every call in order, copying buffers (the core may hand over views of a chunk that is then reused). */
class Recorder {
  readonly calls: Call[] = [];
  /** End of the last command received: by default ACKs report it (the `received` ACK mode). */
  lastEnd = 0;
  /** Overrides what ackOffset() answers (durable ACKs lagging behind the stream). */
  ackFrom: (() => number) | null = null;

  constructor(private readonly resume: { replid: string; offset: number } | null = null) {}

  readonly target: StreamTarget = {
    resumePosition: () => this.resume,
    fullResync: (replid, offset) => {
      this.lastEnd = offset;
      this.calls.push({ t: 'fullResync', replid, offset });
    },
    partialResync: (replid, offset) => {
      this.lastEnd = offset;
      this.calls.push({ t: 'partialResync', replid, offset });
    },
    snapshotStart: (size) => this.calls.push({ t: 'snapshotStart', size }),
    snapshotData: (chunk) => this.calls.push({ t: 'snapshotData', bytes: Buffer.from(chunk) }),
    snapshotEnd: () => this.calls.push({ t: 'snapshotEnd' }),
    commands: (bytes, end) => {
      this.lastEnd = end;
      this.calls.push({ t: 'commands', bytes: Buffer.from(bytes), end });
    },
    ackOffset: () => (this.ackFrom ? this.ackFrom() : this.lastEnd),
  };

  readonly events: ProtocolEvents = {
    send: (bytes) => this.calls.push({ t: 'send', bytes: Buffer.from(bytes) }),
    psyncSent: (requested) => this.calls.push({ t: 'psyncSent', requested }),
    handshakeDone: (reply, requested) => this.calls.push({ t: 'handshakeDone', reply, requested }),
    optionIgnored: (option, reply) => this.calls.push({ t: 'optionIgnored', option, reply }),
  };

  of<T extends Call['t']>(t: T): Extract<Call, { t: T }>[] {
    return this.calls.filter((c): c is Extract<Call, { t: T }> => c.t === t);
  }

  sends(): string[] {
    return this.of('send').map((c) => latin1(c.bytes));
  }

  snapshot(): Buffer {
    return Buffer.concat(this.of('snapshotData').map((c) => c.bytes));
  }

  stream(): Buffer {
    return Buffer.concat(this.of('commands').map((c) => c.bytes));
  }
}

interface Script {
  settings?: Partial<ProtocolSettings>;
  resume?: { replid: string; offset: number } | null;
  pingReply?: string;
  authReply?: string;
  /** Replies to REPLCONF options by option name; default +OK, and Redis's error for `version` (Valkey knows it). */
  optionReplies?: Record<string, string>;
  /** Keep-alive newlines before the PSYNC reply (a master waiting to start a BGSAVE sends one every second). */
  keepAlivesBeforeReply?: number;
  psyncReply: string;
  snapshot?: { kind: 'len' | 'eof'; rdb: Buffer; keepAlives?: number; header?: string };
  commands?: Buffer[];
}

interface Transcript {
  settings: ProtocolSettings;
  resume: { replid: string; offset: number } | null;
  /** Everything the master sends. */
  bytes: Buffer;
  /** What the replica must have sent once `at` bytes of `bytes` arrived, in order. */
  sends: { at: number; bytes: Buffer }[];
  psyncEnd: number;
  snapshot: { kind: 'len' | 'eof'; rdb: Buffer; headerEnd: number; end: number } | null;
  /** Where the command stream starts in `bytes` (after the snapshot, or right after +CONTINUE). */
  streamStart: number;
  stream: Buffer;
  startOffset: number;
  /** Stream-relative ends of the commands, ascending. */
  boundaries: number[];
}

/** The replica's handshake requests, in Redis's replica order, each with the master's reply. */
function handshake(s: Script, settings: ProtocolSettings): { request: Buffer; reply: string }[] {
  const steps: { request: Buffer; reply: string }[] = [
    { request: resp('PING'), reply: s.pingReply ?? '+PONG' },
  ];
  if (settings.password !== undefined) {
    const args = settings.username
      ? ['AUTH', settings.username, settings.password]
      : ['AUTH', settings.password];
    steps.push({ request: resp(...args), reply: s.authReply ?? '+OK' });
  }
  const option = (name: string, ...values: string[]) => {
    const fallback = name === 'version' ? '-ERR Unrecognized REPLCONF option: version' : '+OK';
    steps.push({ request: resp('REPLCONF', name, ...values), reply: s.optionReplies?.[name] ?? fallback });
  };
  option('listening-port', String(settings.listeningPort));
  if (settings.announceIp) option('ip-address', settings.announceIp);
  option('capa', 'eof', 'capa', 'psync2');
  option('version', settings.replicaVersion);
  const r = s.resume;
  steps.push({
    request: r ? resp('PSYNC', r.replid, String(r.offset + 1)) : resp('PSYNC', '?', '-1'),
    reply: '\n'.repeat(s.keepAlivesBeforeReply ?? 0) + s.psyncReply,
  });
  return steps;
}

function build(s: Script): Transcript {
  const settings = { ...BASE, ...s.settings };
  const parts: Buffer[] = [];
  let at = 0;
  const push = (b: Buffer | string) => {
    const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
    parts.push(buf);
    at += buf.length;
  };
  const sends: { at: number; bytes: Buffer }[] = [];
  for (const step of handshake(s, settings)) {
    sends.push({ at, bytes: step.request });
    push(`${step.reply}\r\n`);
  }
  const psyncEnd = at;
  const full = /^\+FULLRESYNC \S+ (\d+)$/.exec(s.psyncReply);
  const startOffset = full ? Number(full[1]) : (s.resume?.offset ?? 0);
  let snapshot: Transcript['snapshot'] = null;
  if (s.snapshot) {
    const { kind, rdb } = s.snapshot;
    push('\n'.repeat(s.snapshot.keepAlives ?? 0));
    push(`${s.snapshot.header ?? (kind === 'len' ? `$${rdb.length}` : `$EOF:${MARK}`)}\r\n`);
    const headerEnd = at;
    push(rdb);
    if (kind === 'eof') push(MARK);
    snapshot = { kind, rdb, headerEnd, end: at };
    sends.push({ at, bytes: ack(startOffset) });
  }
  const streamStart = at;
  const boundaries: number[] = [];
  let rel = 0;
  for (const c of s.commands ?? []) {
    push(c);
    rel += c.length;
    boundaries.push(rel);
    if (latin1(c).toUpperCase() === latin1(resp('REPLCONF', 'GETACK', '*')))
      sends.push({ at, bytes: ack(startOffset + rel) });
  }
  const bytes = Buffer.concat(parts);
  return {
    settings,
    resume: s.resume ?? null,
    bytes,
    sends,
    psyncEnd,
    snapshot,
    streamStart,
    stream: bytes.subarray(streamStart),
    startOffset,
    boundaries,
  };
}

/**
 * Feeds `bytes` cut at `cuts` (ascending positions). Each chunk is a copy that is overwritten once feed returns, as a
 * socket may reuse its buffer: whatever the core keeps across chunks must be its own copy.
 */
function feedCuts(proto: ReplicationProtocol, bytes: Buffer, cuts: number[]): void {
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    if (to <= from) continue;
    const chunk = Buffer.from(bytes.subarray(from, to));
    proto.feed(chunk);
    chunk.fill(0x21);
    from = to;
  }
}

function sizeCuts(length: number, size: number): number[] {
  const cuts: number[] = [];
  for (let i = size; i < length; i += size) cuts.push(i);
  return cuts;
}

function start(t: Transcript, rec = new Recorder(t.resume)): { proto: ReplicationProtocol; rec: Recorder } {
  const proto = new ReplicationProtocol(t.settings, rec.target, rec.events);
  proto.start();
  return { proto, rec };
}

function play(t: Transcript, cuts: number[], bytes = t.bytes) {
  const { proto, rec } = start(t);
  feedCuts(proto, bytes, cuts);
  return { proto, rec };
}

/** Feeds until the core throws; fails the test if it never does. */
function failure(t: Transcript, size: number): { err: Error; rec: Recorder } {
  const { proto, rec } = start(t);
  try {
    feedCuts(proto, t.bytes, sizeCuts(t.bytes.length, size));
  } catch (err) {
    return { err: err as Error, rec };
  }
  throw new Error(`the core accepted the whole transcript at chunk size ${size}`);
}

/** Chunk sizes: every size up to `max`, then a few large ones and the whole transcript at once. */
function sizes(t: Transcript, max = t.bytes.length): number[] {
  const out: number[] = [];
  for (let s = 1; s <= Math.min(max, t.bytes.length); s++) out.push(s);
  for (const s of [4096, 65_536, t.bytes.length]) if (!out.includes(s)) out.push(s);
  return out;
}

/** Everything the core did for a complete transcript, checked against the transcript itself. */
function checkComplete(t: Transcript, rec: Recorder, proto: ReplicationProtocol, label: string): void {
  expect(rec.sends(), label).toEqual(t.sends.map((s) => latin1(s.bytes)));
  expect(proto.phase, label).toBe('stream');
  expect(proto.offset, label).toBe(t.startOffset + t.stream.length);
  expect(proto.counts.streamBytes, label).toBe(t.stream.length);
  expect(latin1(rec.stream()), label).toBe(latin1(t.stream));
  let at = t.startOffset;
  const boundaries = new Set(t.boundaries.map((b) => t.startOffset + b));
  for (const c of rec.of('commands')) {
    at += c.bytes.length;
    expect(c.end, label).toBe(at);
    expect(boundaries.has(c.end), `${label}: ${c.end} is not a command boundary`).toBe(true);
  }
  if (t.snapshot) {
    const s = t.snapshot;
    expect(rec.of('fullResync'), label).toEqual([{ t: 'fullResync', replid: REPLID, offset: t.startOffset }]);
    expect(rec.of('snapshotStart'), label).toEqual([
      { t: 'snapshotStart', size: s.kind === 'len' ? s.rdb.length : null },
    ]);
    expect(rec.snapshot().equals(s.rdb), `${label}: snapshot bytes differ from the RDB`).toBe(true);
    expect(proto.counts.snapshotBytes, label).toBe(s.rdb.length);
    // Order: fullResync, snapshotStart, data…, snapshotEnd, then at once the ACK that starts a diskless master's stream.
    const kinds = rec.calls.map((c) => c.t);
    const end = kinds.indexOf('snapshotEnd');
    expect(kinds.lastIndexOf('snapshotEnd'), label).toBe(end);
    expect(kinds.indexOf('fullResync'), label).toBeLessThan(kinds.indexOf('snapshotStart'));
    expect(kinds.lastIndexOf('snapshotData'), label).toBeLessThan(end);
    if (s.rdb.length > 0)
      expect(kinds.indexOf('snapshotData'), label).toBeGreaterThan(kinds.indexOf('snapshotStart'));
    const next = rec.calls[end + 1];
    expect(next?.t === 'send' ? latin1(next.bytes) : next?.t, label).toBe(latin1(ack(t.startOffset)));
    expect(kinds.indexOf('commands') === -1 || kinds.indexOf('commands') > end, label).toBe(true);
  }
}

/** The state after a link cut once `p` bytes of the transcript arrived. */
function checkCut(t: Transcript, p: number, rec: Recorder, proto: ReplicationProtocol, label: string): void {
  expect(rec.sends(), label).toEqual(t.sends.filter((s) => s.at <= p).map((s) => latin1(s.bytes)));
  const snapshotEnd = t.snapshot ? t.snapshot.end : t.psyncEnd;
  const phase: Phase = p < t.psyncEnd ? 'handshake' : p < snapshotEnd ? 'snapshot' : 'stream';
  expect(proto.phase, label).toBe(phase);
  let whole = 0;
  for (const b of t.boundaries) if (b <= p - t.streamStart) whole = b;
  expect(proto.offset, label).toBe(phase === 'handshake' ? 0 : t.startOffset + whole);
  // Only whole commands, exactly those within the prefix.
  expect(latin1(rec.stream()), label).toBe(latin1(t.stream.subarray(0, whole)));
  const boundaries = new Set(t.boundaries.map((b) => t.startOffset + b));
  for (const c of rec.of('commands')) expect(boundaries.has(c.end), label).toBe(true);
  expect(rec.of('handshakeDone').length, label).toBe(p >= t.psyncEnd ? 1 : 0);
  if (!t.snapshot) return;
  const s = t.snapshot;
  expect(rec.of('fullResync').length, label).toBe(p >= t.psyncEnd ? 1 : 0);
  expect(rec.of('snapshotStart').length, label).toBe(p >= s.headerEnd ? 1 : 0);
  expect(rec.of('snapshotEnd').length, label).toBe(p >= s.end ? 1 : 0);
  const got = rec.snapshot();
  expect(
    got.equals(s.rdb.subarray(0, got.length)),
    `${label}: snapshot data is not a prefix of the RDB`,
  ).toBe(true);
  const body = Math.min(Math.max(p - s.headerEnd, 0), s.end - s.headerEnd);
  if (s.kind === 'len') expect(got.length, label).toBe(body);
  // A diskless transfer may hold back the last 40 bytes (they might be the mark), never more.
  else expect(got.length, label).toBeGreaterThanOrEqual(Math.min(s.rdb.length, body - 40));
}

/** An RDB-like payload: binary bytes, with pieces of the mark inside and right before the real mark. */
function rdbWith(seed: number, length: number, markPieces = true): Buffer {
  const r = prng(seed);
  const body = Buffer.alloc(length);
  for (let i = 0; i < length; i++) body[i] = Math.floor(r() * 256);
  if (!markPieces) return Buffer.concat([Buffer.from('REDIS0011'), body]);
  return Buffer.concat([
    Buffer.from('REDIS0011'),
    body.subarray(0, length / 2),
    Buffer.from(MARK.slice(0, 39)),
    Buffer.from('\r\n'),
    Buffer.from(MARK.slice(1)),
    body.subarray(length / 2),
    Buffer.from(MARK.slice(0, 20)),
  ]);
}

const GETACK = resp('REPLCONF', 'GETACK', '*');
/** What a master streams: SELECT first, a transaction, its PINGs, a GETACK, values that look like protocol. */
const COMMANDS = [
  resp('SELECT', '0'),
  resp('SET', 'k', Buffer.from('a\r\n$EOF:\r\n*1\r\n\n')),
  resp('MULTI'),
  resp('INCR', 'n'),
  resp('EXEC'),
  resp('PING'),
  GETACK,
  resp('SET', 'mark', MARK),
  resp('SET', 'big', Buffer.alloc(700, 'v')),
  resp('DEL', 'k'),
];

const fullSync = (kind: 'len' | 'eof', extra: Partial<Script> = {}) =>
  build({
    settings: { password: 'secret' },
    keepAlivesBeforeReply: 2,
    psyncReply: `+FULLRESYNC ${REPLID} 7000`,
    snapshot: { kind, rdb: rdbWith(kind === 'len' ? 11 : 12, 400), keepAlives: 3 },
    commands: COMMANDS,
    ...extra,
  });

describe('ReplicationProtocol handshake', () => {
  it('sends the exact handshake one command at a time, each only after the previous reply', () => {
    const t = build({
      settings: { username: 'repl', password: 'p@ss w0rd', announceIp: '10.0.0.7' },
      psyncReply: `+FULLRESYNC ${REPLID} 0`,
    });
    const { proto, rec } = start(t);
    const expected = [
      '*1\r\n$4\r\nPING\r\n',
      '*3\r\n$4\r\nAUTH\r\n$4\r\nrepl\r\n$9\r\np@ss w0rd\r\n',
      '*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n',
      '*3\r\n$8\r\nREPLCONF\r\n$10\r\nip-address\r\n$8\r\n10.0.0.7\r\n',
      '*5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n',
      '*3\r\n$8\r\nREPLCONF\r\n$7\r\nversion\r\n$5\r\n9.0.0\r\n',
      '*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n',
    ];
    // Byte by byte: each request goes out exactly when the LF ending the previous reply arrives.
    for (let p = 0; p <= t.bytes.length; p++) {
      if (p > 0) proto.feed(t.bytes.subarray(p - 1, p));
      const replies = (latin1(t.bytes.subarray(0, p)).match(/\n/g) ?? []).length;
      expect(rec.sends(), `after ${p} bytes`).toEqual(
        expected.slice(0, Math.min(replies + 1, expected.length)),
      );
    }
    expect(rec.of('psyncSent')).toEqual([{ t: 'psyncSent', requested: '? -1' }]);
    expect(rec.of('handshakeDone')).toEqual([
      { t: 'handshakeDone', reply: `+FULLRESYNC ${REPLID} 0`, requested: '? -1' },
    ]);
    expect(rec.of('optionIgnored')).toEqual([
      { t: 'optionIgnored', option: 'version', reply: '-ERR Unrecognized REPLCONF option: version' },
    ]);
    expect(proto.phase).toBe('snapshot');
  });

  it('sends AUTH with the password alone when no user is given, and nothing for a master without one', () => {
    const withPassword = build({ settings: { password: 'pw' }, psyncReply: `+FULLRESYNC ${REPLID} 0` });
    const { rec } = play(withPassword, []);
    expect(rec.sends()[1]).toBe('*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n');
    const open = build({ psyncReply: `+FULLRESYNC ${REPLID} 0` });
    const r2 = play(open, []).rec;
    expect(r2.sends().slice(0, 2)).toEqual([
      '*1\r\n$4\r\nPING\r\n',
      '*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n',
    ]);
    expect(r2.sends().some((s) => s.includes('AUTH'))).toBe(false);
  });

  it('asks to continue after the resume position: PSYNC <replid> <offset+1>', () => {
    const t = build({ resume: { replid: REPLID, offset: 41_999 }, psyncReply: '+CONTINUE' });
    const { rec } = play(t, []);
    expect(rec.sends().at(-1)).toBe(`*3\r\n$5\r\nPSYNC\r\n$40\r\n${REPLID}\r\n$5\r\n42000\r\n`);
    expect(rec.of('psyncSent')).toEqual([{ t: 'psyncSent', requested: `${REPLID} 42000` }]);
  });

  it('accepts NOAUTH and NOPERM answers to PING (a master with a password answers PING before AUTH)', () => {
    for (const pingReply of [
      '-NOAUTH Authentication required.',
      "-NOPERM this user has no permissions to run the 'ping' command",
      '-ERR operation not permitted',
    ]) {
      const t = fullSync('len', { pingReply });
      for (const size of [1, 3, 64, t.bytes.length]) {
        const { rec, proto } = play(t, sizeCuts(t.bytes.length, size));
        checkComplete(t, rec, proto, `${pingReply} at size ${size}`);
      }
    }
  });

  it('ignores errors to REPLCONF options and reports each one', () => {
    const t = build({
      settings: { announceIp: '10.0.0.7' },
      optionReplies: {
        'ip-address': '-ERR Unrecognized REPLCONF option: ip-address',
        capa: '-ERR Unrecognized REPLCONF option: capa',
      },
      psyncReply: `+FULLRESYNC ${REPLID} 0`,
    });
    for (const size of sizes(t, 40)) {
      const { rec, proto } = play(t, sizeCuts(t.bytes.length, size));
      expect(rec.of('optionIgnored'), `size ${size}`).toEqual([
        { t: 'optionIgnored', option: 'ip-address', reply: '-ERR Unrecognized REPLCONF option: ip-address' },
        { t: 'optionIgnored', option: 'capa', reply: '-ERR Unrecognized REPLCONF option: capa' },
        { t: 'optionIgnored', option: 'version', reply: '-ERR Unrecognized REPLCONF option: version' },
      ]);
      expect(rec.sends(), `size ${size}`).toEqual(t.sends.map((s) => latin1(s.bytes)));
      expect(proto.phase).toBe('snapshot');
    }
  });

  const cases: {
    what: string;
    script: Script;
    error: new (...args: never[]) => Error;
    fatal: boolean;
    message: RegExp;
    /** Requests sent, the refused one included. */
    sent: number;
  }[] = [
    {
      what: 'WRONGPASS on AUTH',
      script: {
        settings: { username: 'repl', password: 'bad' },
        authReply: '-WRONGPASS invalid username-password pair or user is disabled.',
        psyncReply: '+X',
      },
      error: AuthError,
      fatal: true,
      message: /WRONGPASS invalid username-password pair.*check the user name and password in the master URL/,
      sent: 2,
    },
    {
      what: 'AUTH to a master without a password',
      script: {
        settings: { password: 'pw' },
        authReply:
          '-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
        psyncReply: '+X',
      },
      error: AuthError,
      fatal: true,
      message: /the master has no password: remove it from the master URL/,
      sent: 2,
    },
    {
      what: 'NOPERM on REPLCONF',
      script: {
        settings: { username: 'repl', password: 'pw' },
        optionReplies: {
          'listening-port': "-NOPERM User repl has no permissions to run the 'replconf' command",
        },
        psyncReply: '+X',
      },
      error: AuthError,
      fatal: true,
      message: /NOPERM User repl.*\+psync \+replconf \+ping/,
      sent: 3,
    },
    {
      what: 'NOAUTH on REPLCONF (no password given)',
      script: { optionReplies: { 'listening-port': '-NOAUTH Authentication required.' }, psyncReply: '+X' },
      error: AuthError,
      fatal: true,
      message: /the master requires a password: give it in the master URL/,
      sent: 2,
    },
    {
      what: 'NOPERM on PSYNC',
      script: { psyncReply: "-NOPERM User repl has no permissions to run the 'psync' command" },
      error: AuthError,
      fatal: true,
      message: /\+psync \+replconf \+ping/,
      sent: 5,
    },
    {
      what: '-LOADING on PSYNC',
      script: { keepAlivesBeforeReply: 1, psyncReply: '-LOADING Redis is loading the dataset in memory' },
      error: HandshakeError,
      fatal: false,
      message: /refused PSYNC: -LOADING Redis is loading/,
      sent: 5,
    },
    {
      what: '-NOMASTERLINK on PSYNC',
      script: { psyncReply: "-NOMASTERLINK Can't SYNC while not connected with my master" },
      error: HandshakeError,
      fatal: false,
      message: /refused PSYNC: -NOMASTERLINK/,
      sent: 5,
    },
    {
      what: 'another error on PING',
      script: { pingReply: '-ERR unknown command', psyncReply: '+X' },
      error: HandshakeError,
      fatal: false,
      message: /refused PING: -ERR unknown command/,
      sent: 1,
    },
    ...['+OK', '+FULLRESYNC', `+FULLRESYNC ${REPLID}`, `+FULLRESYNC ${REPLID} 12x`, ':0', '+CONTINUE'].map(
      (psyncReply) => ({
        what: `PSYNC ? -1 answered '${psyncReply}'`,
        script: { psyncReply },
        error: FatalLinkError,
        fatal: true,
        message: /answered PSYNC with .* not a reply redtail knows/,
        sent: 5,
      }),
    ),
    {
      what: 'an overlong reply line',
      script: { pingReply: `+PONG ${'x'.repeat(5000)}`, psyncReply: '+X' },
      error: FatalLinkError,
      fatal: true,
      message: /overlong/,
      sent: 1,
    },
    ...['$EOF:', `$EOF:${MARK.slice(0, 39)}`, '$EOF:short'].map((header) => ({
      what: `a malformed mark '${header}'`,
      script: {
        psyncReply: `+FULLRESYNC ${REPLID} 0`,
        snapshot: { kind: 'eof' as const, rdb: rdbWith(5, 100), header },
      },
      error: FatalLinkError,
      fatal: true,
      message: /malformed \$EOF: mark/,
      sent: 5,
    })),
    ...['$', '$abc', '$-1', '$12x', '$ 12', '$99999999999999999999'].map((header) => ({
      what: `an invalid snapshot length '${header}'`,
      script: {
        psyncReply: `+FULLRESYNC ${REPLID} 0`,
        snapshot: { kind: 'len' as const, rdb: rdbWith(5, 100), header },
      },
      error: FatalLinkError,
      fatal: true,
      message: /invalid snapshot length/,
      sent: 5,
    })),
    {
      what: 'something other than a snapshot after +FULLRESYNC',
      script: {
        psyncReply: `+FULLRESYNC ${REPLID} 0`,
        snapshot: { kind: 'len', rdb: rdbWith(5, 100), header: '+OK' },
      },
      error: FatalLinkError,
      fatal: true,
      message: /where the snapshot should start/,
      sent: 5,
    },
  ];

  for (const c of cases) {
    it(`fails on ${c.what} at every chunk size, with ${c.error.name} (${c.fatal ? 'fatal' : 'retriable'})`, () => {
      const t = build(c.script);
      for (const size of sizes(t, 300)) {
        const { err, rec } = failure(t, size);
        const label = `${c.what} at size ${size}: ${err.message}`;
        expect(err, label).toBeInstanceOf(c.error);
        expect(isFatal(err), label).toBe(c.fatal);
        expect(err.message, label).toMatch(c.message);
        expect(err.message, label).toContain(BASE.master);
        // Nothing after the refused step: no further request, no resync, no snapshot.
        expect(rec.sends(), label).toEqual(t.sends.slice(0, c.sent).map((s) => latin1(s.bytes)));
        if (c.script.psyncReply.startsWith('-') || !c.script.snapshot)
          expect(rec.of('fullResync').length + rec.of('partialResync').length, label).toBe(0);
        expect(rec.of('snapshotData').length + rec.of('snapshotEnd').length, label).toBe(0);
      }
    });
  }

  it('treats an error where the snapshot should start as retriable (a master whose fork failed)', () => {
    // Redis's master, when forking the diskless-sync child fails after +FULLRESYNC went out, answers
    // "-ERR BGSAVE failed, replication can't continue" and closes (startBgsaveForReplication); Redis's replica logs
    // "MASTER aborted replication with an error" and retries (readSyncBulkPayload). A fork failure (ENOMEM) is
    // transient, so it must not stop redtail for good.
    const t = build({
      psyncReply: `+FULLRESYNC ${REPLID} 0`,
      snapshot: {
        kind: 'eof',
        rdb: Buffer.alloc(0),
        keepAlives: 2,
        header: "-ERR BGSAVE failed, replication can't continue",
      },
    });
    for (const size of sizes(t, 100)) {
      const { err } = failure(t, size);
      expect(err, `size ${size}`).toBeInstanceOf(RedtailError);
      expect(isFatal(err), `size ${size}: ${err.message}`).toBe(false);
      expect(err.message).toContain("BGSAVE failed, replication can't continue");
    }
  });
});

describe('ReplicationProtocol full sync', () => {
  for (const kind of ['len', 'eof'] as const) {
    it(`$${kind === 'len' ? '<len>' : 'EOF:<mark>'}: snapshot, first ACK, then the stream, at every chunk size`, () => {
      const t = fullSync(kind);
      for (const size of sizes(t)) {
        const { rec, proto } = play(t, sizeCuts(t.bytes.length, size));
        checkComplete(t, rec, proto, `size ${size}`);
      }
    });

    it(`$${kind}: a link cut at every byte leaves a consistent state and only whole commands`, () => {
      const t = fullSync(kind);
      // Fed byte by byte, checked after each byte.
      const inc = start(t);
      checkCut(t, 0, inc.rec, inc.proto, 'nothing received');
      for (let p = 1; p <= t.bytes.length; p++) {
        feedCuts(inc.proto, t.bytes.subarray(p - 1, p), []);
        checkCut(t, p, inc.rec, inc.proto, `byte by byte, cut at ${p}`);
      }
      // Every prefix in one chunk and in chunks of 7 bytes (a cut in the middle of a larger read).
      for (let p = 0; p <= t.bytes.length; p++) {
        for (const size of [7, p]) {
          const prefix = t.bytes.subarray(0, p);
          const { rec, proto } = play(t, size > 0 ? sizeCuts(p, size) : [], prefix);
          checkCut(t, p, rec, proto, `cut at ${p}, chunks of ${size}`);
        }
      }
    });
  }

  it('a 0-byte snapshot ends at once and the stream follows', () => {
    const t = fullSync('len', { snapshot: { kind: 'len', rdb: Buffer.alloc(0) } });
    for (const size of sizes(t, 200)) {
      const { rec, proto } = play(t, sizeCuts(t.bytes.length, size));
      checkComplete(t, rec, proto, `size ${size}`);
    }
  });

  it('never passes the $EOF: mark to snapshotData, wherever the chunks split it', () => {
    const prefixed = (k: number) => Buffer.concat([Buffer.from('REDIS0011'), Buffer.from(MARK.slice(0, k))]);
    /** Each RDB, and whether to also try every pair of cuts around its mark (a sample: that is the slow part). */
    const rdbs: [Buffer, boolean][] = [
      [rdbWith(21, 300), true],
      [rdbWith(22, 300, false), true],
      // A real minimal RDB is shorter than the mark (REDIS0011, EOF opcode, 8-byte checksum).
      [Buffer.concat([Buffer.from('REDIS0011'), Buffer.from([0xff, 1, 2, 3, 4, 5, 6, 7, 8])]), true],
      [Buffer.from('R'), true],
      // Ending with every proper prefix of the mark, and with its first 39 bytes twice over.
      ...Array.from({ length: 39 }, (_, i): [Buffer, boolean] => [
        prefixed(i + 1),
        [1, 20, 38, 39].includes(i + 1),
      ]),
      [Buffer.from(`REDIS0011${MARK.slice(0, 39)}${MARK.slice(0, 39)}`), true],
    ];
    // A short stream after the mark (with the mark inside a value): the cuts of interest are all around the mark.
    const commands = [resp('SELECT', '0'), resp('SET', 'mark', MARK)];
    for (const [rdb, threeWay] of rdbs) {
      const t = fullSync('eof', { snapshot: { kind: 'eof', rdb }, settings: {}, commands });
      const s = t.snapshot!;
      const label = `RDB of ${rdb.length} bytes ending '${latin1(rdb.subarray(-12))}'`;
      for (const size of [1, 2, 13, 39, 40, 41, 80]) {
        const { rec, proto } = play(t, sizeCuts(t.bytes.length, size));
        checkComplete(t, rec, proto, `${label}, size ${size}`);
      }
      // Two chunks, split at every position from the header to the first commands of the stream.
      for (let cut = t.psyncEnd; cut <= Math.min(s.end + 60, t.bytes.length); cut++) {
        const { rec, proto } = play(t, [cut]);
        checkComplete(t, rec, proto, `${label}, split at ${cut}`);
      }
      // Three chunks, both cuts in or next to the mark (for a sample of the RDBs ending with a piece of the mark).
      const markAt = s.end - 40;
      for (let a = markAt - 1; threeWay && a <= s.end + 1; a++) {
        for (let b = a; b <= s.end + 1; b++) {
          const { rec, proto } = play(t, [a, b]);
          checkComplete(t, rec, proto, `${label}, split at ${a} and ${b}`);
        }
      }
    }
  });

  it('sends no ACK before the stream (the driver ticks during the snapshot too)', () => {
    const t = fullSync('eof');
    const { proto, rec } = start(t);
    const acks = () => rec.sends().filter((s) => s.includes('ACK'));
    for (let p = 0; p < t.snapshot!.end - 1; p++) {
      proto.sendAck();
      feedCuts(proto, t.bytes.subarray(p, p + 1), []);
    }
    proto.sendAck();
    expect(acks()).toEqual([]);
    // The mark's last byte ends the snapshot: its ACK goes out at once, and only then do ticks send ACKs.
    feedCuts(proto, t.bytes.subarray(t.snapshot!.end - 1, t.snapshot!.end), []);
    expect(acks()).toEqual([latin1(ack(7000))]);
    feedCuts(proto, t.bytes.subarray(t.snapshot!.end), []);
    proto.sendAck();
    expect(acks()).toEqual([
      latin1(ack(7000)),
      latin1(ack(7000 + t.boundaries[6]!)),
      latin1(ack(7000 + t.stream.length)),
    ]);
  });
});

describe('ReplicationProtocol partial resync', () => {
  const resume = { replid: REPLID, offset: 123_456 };
  for (const reply of ['+CONTINUE', `+CONTINUE ${NEW_REPLID}`]) {
    it(`'${reply}': partialResync, then the stream continues from the requested offset`, () => {
      const t = build({ resume, keepAlivesBeforeReply: 1, psyncReply: reply, commands: COMMANDS });
      expect(t.startOffset).toBe(123_456);
      for (const size of sizes(t)) {
        const { rec, proto } = play(t, sizeCuts(t.bytes.length, size));
        const label = `size ${size}`;
        expect(rec.of('partialResync'), label).toEqual([
          { t: 'partialResync', replid: reply === '+CONTINUE' ? REPLID : NEW_REPLID, offset: 123_456 },
        ]);
        expect(
          rec.of('fullResync').length + rec.of('snapshotStart').length + rec.of('snapshotEnd').length,
        ).toBe(0);
        expect(rec.of('handshakeDone'), label).toEqual([
          { t: 'handshakeDone', reply, requested: `${REPLID} 123457` },
        ]);
        checkComplete(t, rec, proto, label);
      }
    });
  }

  it('a link cut at every byte after +CONTINUE leaves a consistent state', () => {
    const t = build({ resume, psyncReply: `+CONTINUE ${NEW_REPLID}`, commands: COMMANDS });
    const inc = start(t);
    for (let p = 1; p <= t.bytes.length; p++) {
      feedCuts(inc.proto, t.bytes.subarray(p - 1, p), []);
      checkCut(t, p, inc.rec, inc.proto, `byte by byte, cut at ${p}`);
    }
    for (let p = 0; p <= t.bytes.length; p++) {
      const { rec, proto } = play(t, [], t.bytes.subarray(0, p));
      checkCut(t, p, rec, proto, `cut at ${p}`);
    }
  });
});

describe('ReplicationProtocol GETACK', () => {
  const resume = { replid: REPLID, offset: 1000 };
  const commands = [
    resp('SET', 'a', '1'),
    resp('SET', 'b', Buffer.alloc(300, 'b')),
    GETACK,
    resp('SET', 'c', '3'),
  ];
  const t = build({ resume, psyncReply: '+CONTINUE', commands });
  const getAckEnd = 1000 + t.boundaries[2]!;

  it('answers right after the commands through the GETACK reached the target, at every chunk size', () => {
    for (const size of sizes(t)) {
      const { rec } = play(t, sizeCuts(t.bytes.length, size));
      const label = `size ${size}`;
      const i = rec.calls.findIndex((c) => c.t === 'send' && latin1(c.bytes).includes('ACK'));
      expect(i, label).toBeGreaterThan(0);
      const before = rec.calls.slice(0, i).filter((c) => c.t === 'commands');
      const after = rec.calls.slice(i).filter((c) => c.t === 'commands');
      expect(before.at(-1)?.end, label).toBe(getAckEnd);
      expect(Buffer.concat(before.map((c) => c.bytes)).length, label).toBe(getAckEnd - 1000);
      expect(
        after.every((c) => c.end > getAckEnd),
        label,
      ).toBe(true);
      expect(latin1((rec.calls[i] as { bytes: Buffer }).bytes), label).toBe(latin1(ack(getAckEnd)));
    }
  });

  it('keeps answering on each advance while the ACKed offset lags behind the GETACK, then stops', () => {
    const { proto, rec } = start(t);
    let durable = 1000;
    rec.ackFrom = () => durable;
    feedCuts(proto, t.bytes, []);
    const acks = () => rec.sends().filter((s) => s.includes('ACK'));
    expect(acks()).toEqual([latin1(ack(1000))]);
    durable = 1000 + t.boundaries[0]!;
    proto.ackAdvanced();
    expect(acks()).toEqual([latin1(ack(1000)), latin1(ack(durable))]);
    proto.ackAdvanced();
    expect(acks().length).toBe(3);
    durable = getAckEnd;
    proto.ackAdvanced();
    expect(acks().at(-1)).toBe(latin1(ack(getAckEnd)));
    expect(acks().length).toBe(4);
    // Covered: further advances wait for the driver's 1 s tick.
    durable = 1000 + t.stream.length;
    proto.ackAdvanced();
    proto.ackAdvanced();
    expect(acks().length).toBe(4);
    proto.sendAck();
    expect(acks().at(-1)).toBe(latin1(ack(1000 + t.stream.length)));
  });

  it('sends no extra ACK on an advance when the first answer already covered the GETACK', () => {
    const { proto, rec } = start(t);
    feedCuts(proto, t.bytes, []);
    expect(rec.sends().filter((s) => s.includes('ACK'))).toEqual([latin1(ack(getAckEnd))]);
    proto.ackAdvanced();
    expect(rec.sends().filter((s) => s.includes('ACK')).length).toBe(1);
  });

  it('a second GETACK while the first is pending: advances are answered until the later one is covered', () => {
    const two = build({ resume, psyncReply: '+CONTINUE', commands: [...commands, GETACK, resp('DEL', 'a')] });
    const { proto, rec } = start(two);
    let durable = 1000;
    rec.ackFrom = () => durable;
    feedCuts(proto, two.bytes, []);
    const secondEnd = 1000 + two.boundaries[4]!;
    durable = getAckEnd;
    proto.ackAdvanced();
    durable = secondEnd;
    proto.ackAdvanced();
    proto.ackAdvanced();
    expect(rec.sends().filter((s) => s.includes('ACK'))).toEqual(
      [1000, 1000, getAckEnd, secondEnd].map((o) => latin1(ack(o))),
    );
  });
});
