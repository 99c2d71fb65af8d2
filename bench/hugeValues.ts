import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redtail } from './benchProcs.js';
import type { PostgresTarget } from './hugePostgres.js';
import { startBenchRedis } from './rdbFixture.js';

/**
 * Issue 16's acceptance values, made and checked without ever holding one whole in the driver: a value is a
 * block repeated, streamed to the master on a raw socket as one RESP command (so the master propagates it as one
 * huge bulk argument), and the NDJSON file redtail writes is decoded in a streaming pass (a 500 MB value's base64
 * cannot be one JS string in the checker either). Used by bench/huge.ts (full size) and, at tens of MB, by
 * test/sinks/stdout/hugeValues.test.ts, hugeTypes.test.ts and test/sinks/kafka/hugeValues.test.ts.
 */

export interface HugeValueSpec {
  key: string;
  /** `COMMAND key ...args value`: the value is always the command's last argument. */
  command: 'SET' | 'RPUSH' | 'HSET' | 'HSETEX' | 'SADD' | 'ZADD' | 'XADD';
  /** Arguments between the key and the value (a hash field, a zset score, a stream id and field). */
  args?: string[];
  size: number;
  /** The repeated block; the value is `block` repeated and cut to `size` (empty: all 'a'). */
  block: Buffer;
  /** Text: only whole blocks (whole characters), padded with ASCII 'x' up to `size`. */
  wholeBlocks?: boolean;
  /** In a run of phase `both`: written before redtail starts (`snapshot`) or while it follows (`stream`, default). */
  phase?: 'stream' | 'snapshot';
}

/** A small deterministic PRNG (xorshift32), so values are the same in every run. */
function bytesFrom(seed: number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Binary (never valid UTF-8: 0xff bytes in every block), period 65521 so LZF (8 KB window) cannot shrink it. */
export function binaryBlock(): Buffer {
  const b = bytesFrom(0x5eed, 65521);
  for (let i = 0; i < b.length; i += 97) b[i] = 0xff;
  return b;
}

/**
 * Valid UTF-8 with characters JSON must escape (`"`, `\`, newlines, tabs, control bytes) and multi-byte ones; every
 * block is whole characters, so any number of blocks (padded with ASCII) stays valid UTF-8.
 */
export function textBlock(): Buffer {
  const rnd = bytesFrom(0x7e47, 8192);
  const alphabet = [
    'a',
    'b',
    'Z',
    ' ',
    '"',
    '\\',
    '\n',
    '\t',
    '\u0001',
    '\u001f',
    'é',
    'ß',
    '日本',
    '😀',
    '/',
    '\u2028',
  ];
  let s = '';
  for (let i = 0; i < rnd.length; i++) s += alphabet[rnd[i]! % alphabet.length];
  return Buffer.from(s, 'utf8');
}

/** The value's bytes `[from, to)` (a view into a fresh run of the block; `to - from` at most the block size). */
function slice(spec: HugeValueSpec, from: number, to: number): Buffer {
  const b = spec.block;
  if (b.length === 0) return Buffer.alloc(to - from, 0x61);
  const start = from % b.length;
  if (start + (to - from) <= b.length) return b.subarray(start, start + (to - from));
  return Buffer.concat([b.subarray(start), b.subarray(0, to - from - (b.length - start))]);
}

/** A text value: whole text blocks, then ASCII 'x' up to `size` (keeps it valid UTF-8). */
export function textSpec(key: string, size: number): HugeValueSpec {
  return { key, command: 'SET', size, block: textBlock(), wholeBlocks: true };
}

/** `size` bytes of 'a': what LZF compresses best (the snapshot then holds it LZF-compressed). */
export function letterSpec(key: string, size: number, command: 'SET' | 'RPUSH' = 'RPUSH'): HugeValueSpec {
  return { key, command, size, block: Buffer.alloc(0) };
}

export function binarySpec(key: string, size: number): HugeValueSpec {
  return { key, command: 'SET', size, block: binaryBlock() };
}

/** The kinds of element a huge value can be besides a string or a list element (issue 16: every type). */
export type ElementKind = 'hash' | 'hash-ttl' | 'set' | 'zset' | 'stream';

/** Field expiry of the `hash-ttl` spec: far enough that it never expires during a run. */
export const HUGE_FIELD_TTL_SECONDS = 86_400;

/**
 * One huge element of `kind`: a hash field's value (`HSET key f v`), a hash field's value with a TTL (`HSETEX key EX
 * s FIELDS 1 f v`, Redis 8.0+), a set member, a zset member (`ZADD key 1.5 m`) or a stream entry's field value
 * (`XADD key * f v`). Content alternates between escaped UTF-8 text and binary so both encodings are covered.
 */
export function elementSpec(key: string, size: number, kind: ElementKind): HugeValueSpec {
  const text = kind === 'hash' || kind === 'zset';
  const content = text
    ? { block: textBlock(), wholeBlocks: true as const }
    : { block: binaryBlock() as Buffer, wholeBlocks: false as const };
  const command = {
    hash: ['HSET', 'f'],
    'hash-ttl': ['HSETEX', 'EX', String(HUGE_FIELD_TTL_SECONDS), 'FIELDS', '1', 'f'],
    set: ['SADD'],
    zset: ['ZADD', '1.5'],
    stream: ['XADD', '*', 'f'],
  }[kind] as [HugeValueSpec['command'], ...string[]];
  const [name, ...args] = command;
  return { key, command: name, args, size, ...content };
}

/** Yields the value in pieces of at most `step` bytes; text values end on a block boundary, padded with 'x'. */
export function* valuePieces(spec: HugeValueSpec, step = 1 << 20): Generator<Buffer> {
  const whole = spec.wholeBlocks ? spec.size - (spec.size % spec.block.length) : spec.size;
  const period = spec.block.length || step;
  for (let at = 0; at < whole; ) {
    const n = Math.min(step, period, whole - at);
    yield slice(spec, at, at + n);
    at += n;
  }
  if (whole < spec.size) yield Buffer.alloc(spec.size - whole, 0x78);
}

export function valueHash(spec: HugeValueSpec): string {
  const h = createHash('sha256');
  for (const p of valuePieces(spec)) h.update(p);
  return h.digest('hex');
}

/** Sends `COMMAND key <value>` on a raw socket, streaming the value; resolves with the master's reply line. */
export async function sendHugeValue(port: number, spec: HugeValueSpec): Promise<string> {
  const sock = createConnection(port, '127.0.0.1');
  await new Promise<void>((res, rej) => {
    sock.once('connect', res);
    sock.once('error', rej);
  });
  const reply = readReply(sock);
  const words = [spec.command, spec.key, ...(spec.args ?? [])].map((w) => Buffer.from(w, 'utf8'));
  let head = `*${words.length + 1}\r\n`;
  for (const w of words) head += `$${w.length}\r\n${w.toString('utf8')}\r\n`;
  head += `$${spec.size}\r\n`;
  await write(sock, Buffer.from(head, 'utf8'));
  for (const p of valuePieces(spec, 1 << 20)) await write(sock, p);
  await write(sock, Buffer.from('\r\n'));
  const line = await reply;
  sock.end();
  if (line.startsWith('-')) throw new Error(`the master refused ${spec.command} ${spec.key}: ${line}`);
  return line;
}

function write(sock: Socket, b: Buffer): Promise<void> {
  // The write callback fires once the data is handed to the kernel: one value piece in flight at a time.
  return new Promise((res, rej) => {
    sock.write(b, (err) => (err ? rej(err) : res()));
  });
}

function readReply(sock: Socket): Promise<string> {
  return new Promise((res, rej) => {
    let got = '';
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const nl = got.indexOf('\r\n');
      if (nl >= 0) res(got.slice(0, nl));
    });
    sock.once('error', rej);
  });
}

/** CPU seconds (user + system, all threads) a process has used, from /proc/<pid>/stat (clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after the command name (which may hold spaces) in parentheses; utime and stime are the 14th and 15th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Peak resident set size (VmHWM) of a process, in bytes. */
export function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

// ---- reading the NDJSON file back ------------------------------------------------------------------------------

/** What the file holds for one key: sha256 and length of the concatenated byte strings of its value, line count. */
export interface KeyDigest {
  sha256: string;
  bytes: number;
  lines: number;
  ops: string[];
  /** Each line's event, its huge byte strings replaced by `{hugeRef: i}` (small ones as in the JSON). */
  events: Array<Record<string, unknown>>;
  /** Each line's SHA-256 and length (without the newline): what a Kafka truncation marker describes. */
  lineSha256: string[];
  lineBytes: number[];
  /**
   * Each line's SHA-256 and length as they would be with another `ts`: a Kafka record committed before a kill -9 and
   * the file's line written after the restart describe the same event received twice, at two times (`ts` is when
   * redtail received the command, docs/events.md), so a marker's line facts are those of the file's line with the
   * marker's `ts`. Read from the file when called.
   */
  lineWithTs: Array<(ts: number) => { sha256: string; bytes: number }>;
  /** Each line's own value bytes (a snapshot part's, say): SHA-256 and length, what a Kafka reference describes. */
  lineValueSha256: string[];
  lineValueBytes: number[];
}

const SMALL_LINE = 8 * 1024 * 1024;
/** A JSON string token longer than this (raw) is not kept in the skeleton but decoded in a streaming pass. */
const HUGE_TOKEN = 64 * 1024;

/**
 * Digests every event of the `keys` (in file order): the byte strings of the event's value (`valueItems`: a
 * string's value, list/set elements, zset members, hash and stream field values; never field names, scores or ids)
 * are decoded (JSON string → UTF-8 bytes, `{"base64"}` → bytes) and hashed in order. Lines up to 8 MB are parsed with
 * JSON.parse; longer ones are scanned (`scanLine`): every string token over 64 KB is left out of a skeleton that is
 * parsed instead, and decoded from the file in pieces when its turn in the hash comes.
 */
export function digestFile(path: string, keys: readonly string[]): Map<string, KeyDigest> {
  const out = new Map<string, { h: ReturnType<typeof createHash>; d: KeyDigest }>();
  for (const k of keys)
    out.set(k, {
      h: createHash('sha256'),
      d: {
        sha256: '',
        bytes: 0,
        lines: 0,
        ops: [],
        events: [],
        lineSha256: [],
        lineBytes: [],
        lineWithTs: [],
        lineValueSha256: [],
        lineValueBytes: [],
      },
    });
  const fd = openSync(path, 'r');
  try {
    for (const [start, end] of lineRanges(fd, statSync(path).size)) {
      const { skeleton, huge } =
        end - start <= SMALL_LINE
          ? { skeleton: readRange(fd, start, end).toString('utf8'), huge: [] }
          : scanLine(fd, start, end);
      const ev = JSON.parse(skeleton, (_k, v) => hugeRefOf(v)) as Record<string, unknown>;
      const entry = typeof ev.key === 'string' ? out.get(ev.key) : undefined;
      if (!entry) continue;
      const d = entry.d;
      d.lines++;
      d.ops.push(String(ev.op));
      d.events.push(ev);
      d.lineSha256.push(rangeSha256(fd, start, end));
      d.lineBytes.push(end - start);
      d.lineWithTs.push(withTs(path, start, end));
      const own = createHash('sha256');
      let ownBytes = 0;
      for (const item of valueItems(ev))
        for (const piece of byteStringPieces(fd, item, huge)) {
          entry.h.update(piece);
          own.update(piece);
          ownBytes += piece.length;
        }
      d.bytes += ownBytes;
      d.lineValueSha256.push(own.digest('hex'));
      d.lineValueBytes.push(ownBytes);
    }
  } finally {
    closeSync(fd);
  }
  const result = new Map<string, KeyDigest>();
  for (const [k, { h, d }] of out) result.set(k, { ...d, sha256: h.digest('hex') });
  return result;
}

/** Every event of the file, its huge byte strings replaced by `{hugeRef: i}` (`digestFile`'s skeletons). */
export function* fileEvents(path: string): Generator<Record<string, unknown>> {
  const fd = openSync(path, 'r');
  try {
    for (const [start, end] of lineRanges(fd, statSync(path).size)) {
      const skeleton =
        end - start <= SMALL_LINE
          ? readRange(fd, start, end).toString('utf8')
          : scanLine(fd, start, end).skeleton;
      yield JSON.parse(skeleton, (_k, v) => hugeRefOf(v)) as Record<string, unknown>;
    }
  } finally {
    closeSync(fd);
  }
}

/** The line [start, end) of the file with its final `"ts":N}` replaced by `"ts":<ts>}` (see KeyDigest.lineWithTs). */
function withTs(path: string, start: number, end: number): (ts: number) => { sha256: string; bytes: number } {
  return (ts) => {
    const fd = openSync(path, 'r');
    try {
      const tailAt = Math.max(start, end - 64);
      const tail = readRange(fd, tailAt, end).toString('latin1');
      const at = tail.lastIndexOf('"ts":');
      if (at < 0 || !tail.endsWith('}')) throw new Error(`the line at ${start} does not end with "ts":N}`);
      const h = createHash('sha256');
      hashRange(fd, start, tailAt + at, h);
      const last = Buffer.from(`"ts":${ts}}`, 'latin1');
      h.update(last);
      return { sha256: h.digest('hex'), bytes: tailAt + at - start + last.length };
    } finally {
      closeSync(fd);
    }
  };
}

function rangeSha256(fd: number, start: number, end: number): string {
  const h = createHash('sha256');
  hashRange(fd, start, end, h);
  return h.digest('hex');
}

function hashRange(fd: number, start: number, end: number, h: ReturnType<typeof createHash>): void {
  const buf = Buffer.allocUnsafe(Math.min(4 << 20, Math.max(1, end - start)));
  for (let pos = start; pos < end; ) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (n === 0) throw new Error(`file ends at ${pos}, before ${end}`);
    h.update(buf.subarray(0, n));
    pos += n;
  }
}

const HUGE_MARK = /^@@huge:(\d+)@@$/;

/** The skeleton's placeholders (`"@@huge:i@@"`, or `{"base64":"@@huge:i@@"}`) as `{hugeRef: i}`. */
function hugeRefOf(v: unknown): unknown {
  if (typeof v === 'string') {
    const m = HUGE_MARK.exec(v);
    return m ? { hugeRef: Number(m[1]) } : v;
  }
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const b = (v as { base64?: unknown }).base64;
    if (b && typeof b === 'object' && 'hugeRef' in b) return b;
  }
  return v;
}

type Pairs = Array<[unknown, unknown]>;

/** The byte strings that make up the value in an event of the ops redtail writes for the specs' commands. */
export function valueItems(ev: Record<string, unknown>): unknown[] {
  const v = ev.value;
  switch (ev.op) {
    case 'set':
      return [v];
    case 'push':
      return ev.elements as unknown[];
    case 'sadd':
      return ev.members as unknown[];
    case 'zadd':
      return (ev.members as Pairs).map((m) => m[0]);
    case 'hset':
    case 'xadd':
      return (ev.fields as Pairs).map((f) => f[1]);
    case 'snapshot':
      switch (ev.type) {
        case 'string':
          return [v];
        case 'list':
        case 'set':
          return v as unknown[];
        case 'zset':
          return (v as Pairs).map((m) => m[0]);
        case 'hash':
          return (v as Pairs).map((f) => f[1]);
        case 'stream':
          return (v as { entries: Array<{ fields: Pairs }> }).entries.flatMap((e) =>
            e.fields.map((f) => f[1]),
          );
      }
  }
  return [];
}

/** A byte string of the event in pieces: a JSON string, `{base64}`, or a huge one decoded from the file. */
function* byteStringPieces(fd: number, v: unknown, huge: HugeRange[]): Generator<Buffer> {
  if (typeof v === 'string') yield Buffer.from(v, 'utf8');
  else if (v && typeof v === 'object' && 'hugeRef' in v) {
    const r = huge[(v as { hugeRef: number }).hugeRef];
    if (!r) throw new Error(`no huge token ${(v as { hugeRef: number }).hugeRef}`);
    yield* decodeRange(fd, r);
  } else if (v && typeof v === 'object' && typeof (v as { base64?: unknown }).base64 === 'string')
    yield Buffer.from((v as { base64: string }).base64, 'base64');
  else throw new Error(`not a byte string: ${JSON.stringify(v)?.slice(0, 100)}`);
}

function readRange(fd: number, start: number, end: number): Buffer {
  const b = Buffer.allocUnsafe(end - start);
  let got = 0;
  while (got < b.length) {
    const n = readSync(fd, b, got, b.length - got, start + got);
    if (n === 0) throw new Error(`file ends at ${start + got}, before ${end}`);
    got += n;
  }
  return b;
}

/** [start, end) of every line (without its newline), found with indexOf over 8 MB reads. */
function* lineRanges(fd: number, size: number): Generator<[number, number]> {
  const buf = Buffer.allocUnsafe(8 << 20);
  let lineStart = 0;
  for (let pos = 0; pos < size; ) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, size - pos), pos);
    if (n === 0) break;
    let from = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, from);
      if (nl < 0 || nl >= n) break;
      yield [lineStart, pos + nl];
      lineStart = pos + nl + 1;
      from = nl + 1;
    }
    pos += n;
  }
  if (lineStart < size) throw new Error(`the file ends inside a line (at ${lineStart} of ${size})`);
}

/** A huge string token's content in the file, `[start, end)` between its quotes; base64 when `{"base64": …}`. */
interface HugeRange {
  start: number;
  end: number;
  base64: boolean;
}

const QUOTE = Buffer.from('"');

/**
 * A long line as a skeleton (the JSON with every string token over HUGE_TOKEN replaced by `"@@huge:i@@"`) and where
 * those tokens are in the file. Strings are skipped with indexOf (an escaped quote is a backslash's next byte), so a
 * 667 MB base64 token costs one search.
 */
function scanLine(fd: number, start: number, end: number): { skeleton: string; huge: HugeRange[] } {
  const parts: Buffer[] = [];
  let recent = '';
  const emit = (b: Buffer) => {
    parts.push(b);
    recent = (recent + b.toString('latin1')).slice(-16);
  };
  const huge: HugeRange[] = [];
  const buf = Buffer.allocUnsafe(4 << 20);
  let inString = false;
  // The previous chunk ended with a backslash inside a string: this chunk's first byte is escaped.
  let escaped = false;
  let strStart = 0;
  let raw: Buffer[] = [];
  let rawLen = 0;
  let big = false;
  for (let pos = start; pos < end; ) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (n === 0) throw new Error(`file ends at ${pos}, before ${end}`);
    const chunk = buf.subarray(0, n);
    let i = 0;
    while (i < n) {
      if (!inString) {
        const q = chunk.indexOf(0x22, i);
        const stop = q < 0 ? n : q;
        if (stop > i) emit(Buffer.from(chunk.subarray(i, stop)));
        if (q < 0) break;
        inString = true;
        strStart = pos + q + 1;
        raw = [];
        rawLen = 0;
        big = false;
        i = q + 1;
        continue;
      }
      let j = i;
      if (escaped) {
        j = i + 1;
        escaped = false;
      }
      let close = -1;
      while (j < n) {
        const q = chunk.indexOf(0x22, j);
        const bs = chunk.indexOf(0x5c, j);
        if (bs >= 0 && (q < 0 || bs < q)) {
          if (bs + 1 >= n) escaped = true;
          j = bs + 2;
          continue;
        }
        close = q;
        break;
      }
      const to = close < 0 ? n : close;
      if (!big) {
        raw.push(Buffer.from(chunk.subarray(i, to)));
        rawLen += to - i;
        if (rawLen > HUGE_TOKEN) {
          big = true;
          raw = [];
        }
      }
      if (close < 0) break;
      if (big) {
        huge.push({ start: strStart, end: pos + close, base64: recent.endsWith('{"base64":') });
        emit(Buffer.from(`"@@huge:${huge.length - 1}@@"`));
      } else emit(Buffer.concat([QUOTE, ...raw, QUOTE]));
      inString = false;
      i = close + 1;
    }
    pos += n;
  }
  if (inString) throw new Error(`the line at ${start} ends inside a string`);
  return { skeleton: Buffer.concat(parts).toString('utf8'), huge };
}

/** A huge token's bytes, decoded in pieces: base64 in 4 MB reads (whole quads), JSON text unescaped. */
function* decodeRange(fd: number, r: HugeRange): Generator<Buffer> {
  const buf = Buffer.allocUnsafe(4 << 20);
  let pendingEscape = Buffer.alloc(0);
  for (let pos = r.start; pos < r.end; ) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, r.end - pos), pos);
    if (n === 0) throw new Error(`file ends at ${pos}, inside a byte string`);
    pos += n;
    if (r.base64) {
      // Reads are a multiple of 4 characters long (4 MB, then the rest), so each decodes on its own.
      yield Buffer.from(buf.toString('latin1', 0, n), 'base64');
      continue;
    }
    // JSON text: raw UTF-8 except backslash escapes; a read may end inside one (kept for the next read).
    const data =
      pendingEscape.length > 0 ? Buffer.concat([pendingEscape, buf.subarray(0, n)]) : buf.subarray(0, n);
    pendingEscape = Buffer.alloc(0);
    const parts: Buffer[] = [];
    let i = 0;
    while (i < data.length) {
      const bs = data.indexOf(0x5c, i);
      if (bs < 0) {
        parts.push(data.subarray(i));
        break;
      }
      parts.push(data.subarray(i, bs));
      const need = data[bs + 1] === 0x75 ? 6 : 2;
      if (bs + need > data.length) {
        pendingEscape = Buffer.from(data.subarray(bs));
        break;
      }
      parts.push(jsonUnescape(data.subarray(bs, bs + need)));
      i = bs + need;
    }
    yield Buffer.concat(parts);
  }
  if (pendingEscape.length > 0) throw new Error('a byte string ends inside an escape');
}

const SIMPLE: Record<string, number> = { '"': 0x22, '\\': 0x5c, '/': 0x2f, b: 8, f: 12, n: 10, r: 13, t: 9 };
function jsonUnescape(esc: Buffer): Buffer {
  const c = String.fromCharCode(esc[1]!);
  if (c === 'u')
    return Buffer.from(String.fromCharCode(Number.parseInt(esc.toString('latin1', 2, 6), 16)), 'utf8');
  const b = SIMPLE[c];
  if (b === undefined) throw new Error(`bad escape \\${c}`);
  return Buffer.of(b);
}

// ---- one run: a master, redtail with the file sink, the values through the stream or in the snapshot ----------

export interface HugeRunOptions {
  specs: readonly HugeValueSpec[];
  /**
   * `stream`: values written while redtail follows; `snapshot`: written before redtail starts (full sync); `both`:
   * each spec by its own `phase`.
   */
  phase: 'stream' | 'snapshot' | 'both';
  dir: string;
  /** Keep the master's default replica output-buffer limit in the stream phase too. */
  defaultLimits?: boolean;
  /** Extra `redtail run` arguments. */
  args?: string[];
  timeoutMs?: number;
  /** The master's and the reference replica's redis-server (default: the one on PATH). */
  redisServer?: string;
  /**
   * Also a sink besides the file (its `--sink` spec), and how to tell it has everything: called once the file has
   * the last key, it resolves when the sink has it too (e.g. a read_committed consumer saw it), with what it saw.
   */
  extraSink?: { spec: string; caughtUp: (doneKey: string) => Promise<unknown> };
  /** After each value sent on the stream, `SET <key>:after 1`: the events behind a huge one must arrive too. */
  after?: boolean;
  /**
   * The Postgres sink instead of the file sink (a schema of its own): its blobs are read back and hashed from
   * Postgres, and `redtail verify` runs at the end (bench/hugePostgres.ts).
   */
  postgres?: PostgresTarget;
}

export interface HugeRunResult {
  phase: 'stream' | 'snapshot' | 'both';
  /** redtail's VmHWM at the end of the run. */
  peakRss: number;
  /** A real redis-server replica of the same master, as reference: its VmHWM. */
  replicaPeakRss: number;
  /** CPU seconds of redtail and of the replica over the run (user + system). */
  cpu: number;
  replicaCpu: number;
  largest: number;
  /** Issue 16's acceptance bound: 1.5 × the largest value + 200 MB. */
  budget: number;
  seconds: number;
  /** Per key: expected and found digests. */
  keys: Array<{ key: string; expected: string; found: KeyDigest; ok: boolean }>;
  redtailExited: boolean;
  log: string[];
  /** What `extraSink.caughtUp` resolved with. */
  extra?: unknown;
  /** The file sink's NDJSON file (removed with `dir`). */
  file: string;
  /** Postgres: `redtail verify`'s differences (0: the mirror agrees with the master) and its wall time. */
  verify?: { differences: number; seconds: number };
}

export const DONE_KEY = 'huge:done';

export async function runHugeScenario(o: HugeRunOptions): Promise<HugeRunResult> {
  const masterDir = join(o.dir, 'master');
  const replicaDir = join(o.dir, 'replica');
  mkdirSync(masterDir, { recursive: true });
  mkdirSync(replicaDir, { recursive: true });
  // A master propagates a command to its replicas whole, and one larger than `client-output-buffer-limit replica`
  // (256 MB hard by default) gets every replica dropped, redis-server's own included (they then full-sync and get
  // the value in the snapshot). The stream phase lifts that limit to measure the stream path itself.
  const master = await startBenchRedis(
    masterDir,
    o.phase !== 'snapshot' && !o.defaultLimits ? ['client-output-buffer-limit replica 0 0 0'] : [],
    o.redisServer,
  );
  const phaseOf = (s: HugeValueSpec) => (o.phase === 'both' ? (s.phase ?? 'stream') : o.phase);
  const send = async (phase: 'stream' | 'snapshot') => {
    for (const s of o.specs)
      if (phaseOf(s) === phase) {
        await sendHugeValue(master.port, s);
        if (phase === 'stream' && o.after) master.cli(['SET', `${s.key}:after`, '1']);
      }
  };
  const replica = await startBenchRedis(replicaDir, [`replicaof 127.0.0.1 ${master.port}`], o.redisServer);
  const file = join(o.dir, 'events.ndjson');
  const expected = o.specs.map((s) => ({ key: s.key, sha: valueHash(s) }));
  const t0 = performance.now();
  let redtail: Redtail | null = null;
  const waitFor = async (what: string, pred: () => boolean) => {
    const deadline = Date.now() + (o.timeoutMs ?? 600_000);
    while (!pred()) {
      if (redtail?.exited)
        throw new Error(
          `redtail exited while waiting for ${what}: ${redtail.lines
            .slice(-3)
            .map((l) => JSON.stringify(l))
            .join('\n')}`,
        );
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };
  try {
    await send('snapshot');
    const pgt = o.postgres;
    redtail = new Redtail([
      '--master',
      `redis://127.0.0.1:${master.port}`,
      '--sink',
      pgt ? pgt.sinkUrl : `file:${file}`,
      '--checkpoint',
      join(o.dir, 'redtail.checkpoint.json'),
      '--log-level',
      'info',
      ...(o.extraSink ? ['--sink', o.extraSink.spec] : []),
      ...(o.args ?? []),
    ]);
    // Postgres is polled in the background (a query every 200 ms); the predicates read its last answers.
    pgt?.poll(DONE_KEY);
    if (pgt) await waitFor('the snapshot', () => pgt.loaded);
    else await waitFor('the snapshot', () => tailHas(file, '"op":"snapshot-end"'));
    await send('stream');
    master.cli(['SET', DONE_KEY, '1']);
    if (pgt) await waitFor('the last value in Postgres', () => pgt.hasKey);
    else await waitFor('the last value in the file', () => tailHas(file, `"key":"${DONE_KEY}"`));
    await pgt?.stopPolling();
    // Until the extra sink has everything too; redtail exiting meanwhile ends the wait (waitFor throws).
    let caught = false;
    const extra = o.extraSink
      ? await Promise.race([
          o.extraSink.caughtUp(DONE_KEY).finally(() => {
            caught = true;
          }),
          waitFor('the extra sink', () => caught).then(() => undefined),
        ])
      : undefined;
    const rss = peakRss(redtail.proc.pid!);
    const cpu = cpuSeconds(redtail.proc.pid!);
    await waitFor('the replica', () => Number(master.cli(['WAIT', '1', '100'])) >= 1);
    const replicaRss = peakRss(replica.proc.pid!);
    const replicaCpu = cpuSeconds(replica.proc.pid!);
    const seconds = (performance.now() - t0) / 1000;
    const keys = o.specs.map((s) => s.key);
    const digests = pgt ? await pgt.digests(keys) : digestFile(file, keys);
    const verify = pgt ? await pgt.verify(`redis://127.0.0.1:${master.port}`) : undefined;
    const largest = Math.max(...o.specs.map((s) => s.size));
    return {
      phase: o.phase,
      peakRss: rss,
      replicaPeakRss: replicaRss,
      cpu,
      replicaCpu,
      largest,
      budget: 1.5 * largest + 200 * 1024 * 1024,
      seconds,
      keys: expected.map((e) => {
        const found = digests.get(e.key)!;
        return { key: e.key, expected: e.sha, found, ok: found.sha256 === e.sha };
      }),
      redtailExited: redtail.exited,
      log: redtail.lines.filter((l) => (l.level ?? 0) >= 40).map((l) => JSON.stringify(l)),
      extra,
      file,
      ...(verify ? { verify } : {}),
    };
  } finally {
    await redtail?.stop();
    master.proc.kill('SIGKILL');
    replica.proc.kill('SIGKILL');
  }
}

/** True when the last 64 KB of the file contain `text`. */
export function tailHas(path: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const size = statSync(path).size;
    const n = Math.min(size, 65536);
    const b = Buffer.allocUnsafe(n);
    readSync(fd, b, 0, n, size - n);
    return b.includes(text);
  } finally {
    closeSync(fd);
  }
}

/** True when the file's last byte is a newline: no line is half-written. */
export function endsWithNewline(path: string): boolean {
  const size = statSync(path).size;
  if (size === 0) return true;
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size - 1);
    return b[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}

/** Polls `pred` every `everyMs` until it holds; fails after `timeoutMs` naming `what`. */
export async function until(
  pred: () => boolean,
  what: string,
  everyMs = 50,
  timeoutMs = 240_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
