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
 * cannot be one JS string in the checker either). Used by bench/huge.ts (full size) and test/e2e/hugeValues.test.ts
 * (tens of MB).
 */

export interface HugeValueSpec {
  key: string;
  /** `SET key value` or `RPUSH key value`. */
  command: 'SET' | 'RPUSH';
  size: number;
  /** The repeated block; the value is `block` repeated and cut to `size` (empty: all 'a'). */
  block: Buffer;
  /** Text: only whole blocks (whole characters), padded with ASCII 'x' up to `size`. */
  wholeBlocks?: boolean;
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
  const key = Buffer.from(spec.key);
  const head = `*3\r\n$${spec.command.length}\r\n${spec.command}\r\n$${key.length}\r\n${spec.key}\r\n$${spec.size}\r\n`;
  await write(sock, Buffer.from(head));
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
}

const SMALL_LINE = 8 * 1024 * 1024;

/**
 * Digests every event of the `keys` (in file order): the byte strings of `value` (string, list/set element array)
 * or `elements` (push) are decoded (JSON string → UTF-8 bytes, `{"base64"}` → bytes) and hashed in order. Lines up
 * to 8 MB are parsed with JSON.parse; longer ones must hold one byte string and are decoded in a streaming pass.
 */
export function digestFile(path: string, keys: readonly string[]): Map<string, KeyDigest> {
  const out = new Map<
    string,
    { h: ReturnType<typeof createHash>; bytes: number; lines: number; ops: string[] }
  >();
  for (const k of keys) out.set(k, { h: createHash('sha256'), bytes: 0, lines: 0, ops: [] });
  const fd = openSync(path, 'r');
  try {
    for (const [start, end] of lineRanges(fd, statSync(path).size)) {
      if (end - start <= SMALL_LINE) {
        const line = readRange(fd, start, end);
        const ev = JSON.parse(line.toString('utf8')) as Record<string, unknown>;
        const key = typeof ev.key === 'string' ? ev.key : undefined;
        const d = key === undefined ? undefined : out.get(key);
        if (!d) continue;
        d.lines++;
        d.ops.push(String(ev.op));
        for (const b of byteStrings(ev.op === 'push' ? ev.elements : ev.value)) {
          d.h.update(b);
          d.bytes += b.length;
        }
      } else {
        const r = digestLongLine(fd, start, end);
        const d = out.get(r.key);
        if (!d) continue;
        d.lines++;
        d.ops.push(r.op);
        for (const piece of r.pieces()) {
          d.h.update(piece);
          d.bytes += piece.length;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  const result = new Map<string, KeyDigest>();
  for (const [k, d] of out)
    result.set(k, { sha256: d.h.digest('hex'), bytes: d.bytes, lines: d.lines, ops: d.ops });
  return result;
}

function byteStrings(v: unknown): Buffer[] {
  if (typeof v === 'string') return [Buffer.from(v, 'utf8')];
  if (Array.isArray(v)) return v.flatMap((x) => byteStrings(x));
  if (v && typeof v === 'object' && typeof (v as { base64?: unknown }).base64 === 'string')
    return [Buffer.from((v as { base64: string }).base64, 'base64')];
  return [];
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

/** A long line: its key and op from the head, and its one byte string decoded piece by piece. */
function digestLongLine(
  fd: number,
  start: number,
  end: number,
): { key: string; op: string; pieces: () => Generator<Buffer> } {
  const head = readRange(fd, start, Math.min(end, start + 4096)).toString('latin1');
  const m =
    /^\{"v":1,"op":"([a-z-]+)","db":\d+,"key":"([^"\\]*)",(?:"type":"[a-z]+",)?(?:"encoding":"[a-z0-9-]+",)?"(?:value|elements|side":"(?:left|right)","elements)":(\[?)/.exec(
      head,
    );
  if (!m) throw new Error(`unsupported long line at ${start}: ${head.slice(0, 200)}`);
  const op = m[1]!;
  const key = m[2]!;
  const valueAt = start + m[0].length;
  return { key, op, pieces: () => decodeByteString(fd, valueAt, end) };
}

/** Decodes the byte string at `at` (`"..."` or `{"base64":"..."}`) in pieces. */
function* decodeByteString(fd: number, at: number, end: number): Generator<Buffer> {
  const opening = readRange(fd, at, Math.min(end, at + 11)).toString('latin1');
  const base64 = opening.startsWith('{"base64":"');
  let pos = at + (base64 ? 11 : 1);
  const buf = Buffer.allocUnsafe(4 << 20);
  let carry = '';
  let pendingEscape = Buffer.alloc(0);
  for (;;) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (n === 0) throw new Error('line ends inside a byte string');
    const chunk = buf.subarray(0, n);
    if (base64) {
      const q = chunk.indexOf(0x22);
      const text = carry + chunk.toString('latin1', 0, q < 0 ? n : q);
      const whole = q < 0 ? text.length - (text.length % 4) : text.length;
      yield Buffer.from(text.slice(0, whole), 'base64');
      carry = text.slice(whole);
      if (q >= 0) return;
      pos += n;
      continue;
    }
    // A JSON string: raw UTF-8 except backslash escapes; a chunk may end inside one (kept for the next read).
    const data = pendingEscape.length > 0 ? Buffer.concat([pendingEscape, chunk]) : chunk;
    pendingEscape = Buffer.alloc(0);
    const parts: Buffer[] = [];
    let i = 0;
    let done = false;
    while (i < data.length) {
      const bs = data.indexOf(0x5c, i);
      const q = data.indexOf(0x22, i);
      if (q >= 0 && (bs < 0 || q < bs)) {
        parts.push(data.subarray(i, q));
        done = true;
        break;
      }
      if (bs < 0) {
        parts.push(data.subarray(i));
        i = data.length;
        break;
      }
      parts.push(data.subarray(i, bs));
      const need = data[bs + 1] === 0x75 ? 6 : 2;
      if (bs + need > data.length) {
        pendingEscape = Buffer.from(data.subarray(bs));
        i = data.length;
        break;
      }
      parts.push(jsonUnescape(data.subarray(bs, bs + need)));
      i = bs + need;
    }
    yield Buffer.concat(parts);
    if (done) return;
    pos += n;
  }
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
   * The sink under test: the NDJSON file (default), or a Postgres URL (its `schema` query parameter names a schema
   * the run creates and drops), whose blobs are read back and hashed from Postgres (bench/hugePostgres.ts).
   */
  postgres?: PostgresTarget;
  /** `stream`: values written while redtail follows; `snapshot`: written before redtail starts (full sync). */
  phase: 'stream' | 'snapshot';
  dir: string;
  /** Keep the master's default replica output-buffer limit in the stream phase too. */
  defaultLimits?: boolean;
  /** Extra `redtail run` arguments. */
  args?: string[];
  timeoutMs?: number;
}

export interface HugeRunResult {
  phase: 'stream' | 'snapshot';
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
  /** Postgres: `redtail verify`'s differences (0: the mirror agrees with the master) and its wall time. */
  verify?: { differences: number; seconds: number };
}

const DONE_KEY = 'huge:done';

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
    o.phase === 'stream' && !o.defaultLimits ? ['client-output-buffer-limit replica 0 0 0'] : [],
  );
  const replica = await startBenchRedis(replicaDir, [`replicaof 127.0.0.1 ${master.port}`]);
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
    if (o.phase === 'snapshot') for (const s of o.specs) await sendHugeValue(master.port, s);
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
      ...(o.args ?? []),
    ]);
    // Postgres is polled in the background (a query every 200 ms); the predicates read its last answers.
    pgt?.poll(DONE_KEY);
    if (pgt) await waitFor('the snapshot', () => pgt.loaded);
    else await waitFor('the snapshot', () => tailHas(file, '"op":"snapshot-end"'));
    if (o.phase === 'stream') for (const s of o.specs) await sendHugeValue(master.port, s);
    master.cli(['SET', DONE_KEY, '1']);
    if (pgt) await waitFor('the last value in Postgres', () => pgt.hasKey);
    else await waitFor('the last value in the file', () => tailHas(file, `"key":"${DONE_KEY}"`));
    await pgt?.stopPolling();
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
      ...(verify ? { verify } : {}),
      log: redtail.lines.filter((l) => (l.level ?? 0) >= 40).map((l) => JSON.stringify(l)),
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
