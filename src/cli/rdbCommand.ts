import { createReadStream, statSync } from 'node:fs';
import { NdjsonWriter } from '../events/NdjsonEncoder.js';
import { ProgressLine } from '../observe/progress.js';
import { Crc64Thread } from '../rdb/crc64Thread.js';
import { RdbFormatError } from '../rdb/RdbFormatError.js';
import { RdbParser } from '../rdb/RdbParser.js';
import type { RdbKeyRecord, RdbPackedKey, RdbStringKey, RdbSummary } from '../rdb/records.js';
import { snapshotBeginEvent, snapshotEndEvent, snapshotEvent } from '../rdb/snapshotEvent.js';
import { writePackedSnapshot } from '../rdb/snapshotLine.js';

const USAGE = `usage: redtail rdb FILE [--db N] [--key-pattern GLOB] [--type TYPE] [--stats [--deep]] [--ignore-checksum]
                  [--markers] [--stream-threshold BYTES]

Prints every key of an RDB file as one NDJSON snapshot event per line (docs/rdb.md).
  --db N               only keys of database N
  --key-pattern GLOB   only keys matching a Redis-style glob (*, ?, [abc], [^a-z], \\x)
  --type TYPE          only keys of this type (string, list, set, zset, hash, stream, module)
  --stats              print counts per type and encoding, bytes and speed instead of the keys
  --deep               with --stats: decode every value too (default: walk the framing and verify the CRC)
  --ignore-checksum    read a file whose CRC64 trailer does not match
  --markers            also print the snapshot-begin and snapshot-end control events
  --stream-threshold B values larger than B bytes come out in parts (part/last fields)
`;

interface Args {
  file: string;
  db: number | null;
  pattern: RegExp | null;
  type: string | null;
  stats: boolean;
  deep: boolean;
  ignoreChecksum: boolean;
  markers: boolean;
  streamThreshold: number | undefined;
}

const TYPES = new Set(['string', 'list', 'set', 'zset', 'hash', 'stream', 'module']);

class UsageError extends Error {}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    file: '',
    db: null,
    pattern: null,
    type: null,
    stats: false,
    deep: false,
    ignoreChecksum: false,
    markers: false,
    streamThreshold: undefined,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '--db': {
        const n = Number(value(++i, arg));
        if (!Number.isInteger(n) || n < 0) throw new UsageError('--db needs a database number');
        a.db = n;
        break;
      }
      case '--key-pattern':
        a.pattern = globToRegExp(value(++i, arg));
        break;
      case '--type': {
        const t = value(++i, arg);
        if (!TYPES.has(t)) throw new UsageError(`unknown type ${t}`);
        a.type = t;
        break;
      }
      case '--stream-threshold': {
        const n = Number(value(++i, arg));
        if (!Number.isInteger(n) || n <= 0) throw new UsageError('--stream-threshold needs a byte count');
        a.streamThreshold = n;
        break;
      }
      case '--stats':
        a.stats = true;
        break;
      case '--deep':
        a.deep = true;
        break;
      case '--ignore-checksum':
        a.ignoreChecksum = true;
        break;
      case '--markers':
        a.markers = true;
        break;
      case '-h':
      case '--help':
        throw new UsageError('');
      default:
        if (arg.startsWith('-') || a.file) throw new UsageError(`unexpected argument ${arg}`);
        a.file = arg;
    }
  }
  if (!a.file) throw new UsageError('missing FILE');
  return a;
}

/**
 * Redis's stringmatchlen glob as a RegExp over the key's bytes read as latin1 (one char per byte), so binary keys
 * match exactly like in KEYS/SCAN MATCH.
 */
export function globToRegExp(glob: string): RegExp {
  const g = Buffer.from(glob, 'utf8').toString('latin1');
  let re = '';
  const esc = (ch: string) => ch.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  for (let i = 0; i < g.length; i++) {
    const ch = g[i]!;
    if (ch === '*') re += '[\\s\\S]*';
    else if (ch === '?') re += '[\\s\\S]';
    else if (ch === '\\' && i + 1 < g.length) re += esc(g[++i]!);
    else if (ch === '[') {
      let j = i + 1;
      let cls = '';
      if (g[j] === '^') {
        cls += '^';
        j++;
      }
      for (; j < g.length && g[j] !== ']'; j++) {
        if (g[j] === '\\' && j + 1 < g.length) cls += esc(g[++j]!);
        else if (g[j + 1] === '-' && j + 2 < g.length && g[j + 2] !== ']') {
          cls += `${esc(g[j]!)}-${esc(g[j + 2]!)}`;
          j += 2;
        } else cls += esc(g[j]!);
      }
      if (j >= g.length) re += '\\[';
      else {
        re += `[${cls}]`;
        i = j;
      }
    } else re += esc(ch);
  }
  return new RegExp(`^${re}$`);
}

/** Files from this size on have their CRC64 computed on a second thread (Crc64Thread). */
const CRC_THREAD_MIN_BYTES = 4 << 20;

/** Lines are written in pieces of about this size. */
const FLUSH_BYTES = 1 << 20;

interface Tally {
  keys: number;
  bytes: number;
}

function tally(map: Map<string, Tally>, name: string, bytes: number): void {
  const t = map.get(name);
  if (t) {
    t.keys++;
    t.bytes += bytes;
  } else map.set(name, { keys: 1, bytes });
}

/** `redtail rdb FILE ...`; resolves to the process exit code. */
export async function rdbCommand(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) process.stderr.write(`redtail rdb: ${err.message}\n`);
    process.stderr.write(USAGE);
    return err.message ? 2 : 0;
  }

  const out = process.stdout;
  let closed = false;
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') closed = true;
  });
  // Lines go straight into a reusable buffer (the per-op encoder, byte-identical to encodeEventLine); each input
  // chunk's lines leave as one write of a view of it. stdout on Linux writes files and pipes synchronously, so the
  // buffer is normally free again when write returns; if the stream kept it queued, a new buffer takes its place.
  let w = new NdjsonWriter(FLUSH_BYTES * 2);
  let ok = true;
  const flushOutput = (): boolean => {
    ok = out.write(w.view()) && ok;
    if (out.writableLength > 0) w = new NdjsonWriter(FLUSH_BYTES * 2);
    else w.reset();
    return ok;
  };
  let seq = 0;
  let replid = '';
  let replOffset = 0;
  let begun = false;
  const byType = new Map<string, Tally>();
  const byEncoding = new Map<string, Tally>();
  let selected = 0;

  const wanted = (rec: RdbKeyRecord): boolean => {
    if (args.db !== null && rec.db !== args.db) return false;
    if (args.type !== null && rec.type !== args.type) return false;
    if (args.pattern !== null && !args.pattern.test(rec.key.toString('latin1'))) return false;
    return true;
  };
  const wantedString = (k: RdbStringKey): boolean => {
    if (args.db !== null && k.db !== args.db) return false;
    if (args.type !== null && args.type !== 'string') return false;
    if (args.pattern !== null && !args.pattern.test(k.key.buf.toString('latin1', k.key.start, k.key.end)))
      return false;
    return true;
  };
  const wantedPacked = (k: RdbPackedKey): boolean => {
    if (args.db !== null && k.db !== args.db) return false;
    if (args.type !== null && args.type !== k.type) return false;
    if (args.pattern !== null && !args.pattern.test(k.key.buf.toString('latin1', k.key.start, k.key.end)))
      return false;
    return true;
  };
  const begin = (version: number) => {
    if (begun) return;
    begun = true;
    if (args.markers && !args.stats)
      w.event(snapshotBeginEvent({ replid, offset: replOffset, seq: seq++ }, { rdbVersion: version }));
  };

  // Big files get their CRC64 computed on a second thread; small ones are not worth starting it.
  const crcThread = (fileSize(args.file) ?? 0) >= CRC_THREAD_MIN_BYTES ? Crc64Thread.start() : null;
  const parser = new RdbParser({
    ignoreChecksum: args.ignoreChecksum,
    checksum: crcThread === null,
    values: !args.stats || args.deep,
    streamThreshold: args.streamThreshold,
    onAux(name, value) {
      if (name === 'repl-id') replid = value.toString('latin1');
      else if (name === 'repl-offset') replOffset = Number(value.toString('latin1'));
    },
    // String keys (most of a typical snapshot) go from the parser's views straight into the line, with no Buffer,
    // record or event object per key.
    onStringKey(k) {
      keysRead++;
      if (args.stats) {
        if (!wantedString(k)) return;
        selected++;
        tally(byType, 'string', k.size);
        tally(byEncoding, 'string', k.size);
        return;
      }
      begin(0);
      if (!wantedString(k)) return;
      selected++;
      w.snapshotString(k, replid, replOffset, seq++, Date.now());
      if (w.length >= FLUSH_BYTES && !closed) flushOutput();
    },
    // Sets, small zsets and hashes: their intset or listpack blob is walked straight into the line.
    onPackedKey(k) {
      keysRead++;
      if (args.stats) {
        if (!wantedPacked(k)) return;
        selected++;
        tally(byType, k.type, k.size);
        tally(byEncoding, k.encoding, k.size);
        return;
      }
      begin(0);
      if (!wantedPacked(k)) return;
      selected++;
      writePackedSnapshot(w, k, replid, replOffset, seq++, Date.now());
      if (w.length >= FLUSH_BYTES && !closed) flushOutput();
    },
    onKey(rec) {
      if (rec.part === undefined || rec.last) keysRead++;
      if (args.stats) {
        if (rec.part !== undefined && !rec.last) return;
        if (!wanted(rec)) return;
        selected++;
        tally(byType, rec.type, rec.size);
        tally(byEncoding, rec.encoding, rec.size);
        return;
      }
      begin(0);
      if (!wanted(rec)) return;
      selected++;
      w.event(snapshotEvent(rec, { replid, offset: replOffset, seq: seq++ }));
      // One input chunk can make ten times its size in lines: writing every MB keeps the buffer (and RSS) small;
      // backpressure is still awaited once per input chunk.
      if (w.length >= FLUSH_BYTES && !closed) flushOutput();
    },
  });

  const started = process.hrtime.bigint();
  let keysRead = 0;
  let bytesRead = 0;
  const startedAt = Date.now();
  // On a terminal only: the file's size gives the percentage and the ETA.
  const progress = new ProgressLine('rdb', () => ({
    keys: keysRead,
    bytes: bytesRead,
    totalBytes: fileSize(args.file),
    startedAt,
  })).start();
  let summary: RdbSummary;
  try {
    // 256 KB reads: 1 MB chunks, freed only when the views into them die, held peak RSS near 250 MB (now ~165).
    const stream = createReadStream(args.file, { highWaterMark: 256 * 1024 });
    for await (const chunk of stream) {
      bytesRead += (chunk as Buffer).length;
      if (crcThread) await crcThread.update(chunk as Buffer);
      parser.write(chunk as Buffer);
      if (w.length > 0 && !closed) flushOutput();
      if (!ok && !closed) {
        ok = true;
        await drained(out);
      }
      if (closed) {
        stream.destroy();
        crcThread?.stop();
        progress.stop();
        return 0;
      }
    }
    summary = parser.end();
    if (crcThread) summary = await crcThread.verify(summary, args.ignoreChecksum);
  } catch (err) {
    crcThread?.stop();
    progress.stop();
    if (err instanceof RdbFormatError) {
      if (w.length > 0) flushOutput();
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`redtail rdb: ${e.code === 'ENOENT' ? `no such file: ${args.file}` : e.message}\n`);
    return 1;
  }
  progress.stop();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;

  if (args.stats) {
    const toObj = (m: Map<string, Tally>) =>
      Object.fromEntries([...m.entries()].sort((a, b) => b[1].keys - a[1].keys));
    const report = {
      file: args.file,
      rdbVersion: summary.version,
      flavor: summary.flavor,
      redisVersion: summary.aux['redis-ver'] ?? summary.aux['valkey-ver'] ?? null,
      keys: selected,
      totalKeys: summary.keys,
      keysPerDb: summary.keysPerDb,
      types: toObj(byType),
      encodings: toObj(byEncoding),
      functions: summary.functions,
      checksum: summary.checksum,
      bytes: summary.bytes,
      seconds: Number(seconds.toFixed(3)),
      keysPerSecond: Math.round(summary.keys / seconds),
      megabytesPerSecond: Number((summary.bytes / 1e6 / seconds).toFixed(1)),
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    };
    out.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  begin(summary.version);
  if (args.markers) w.event(snapshotEndEvent(summary, { replid, offset: replOffset, seq: seq++ }));
  if (w.length > 0 && !closed) {
    if (!flushOutput()) await drained(out);
  }
  return 0;
}

/**
 * Waits until stdout takes more output or is gone. A reader that quits early (`redtail rdb big.rdb | head`) closes
 * the pipe: the pending write fails with EPIPE, which `once(out, 'drain')` would turn into a rejection and exit 1.
 * Like other Unix filters, a closed output is a normal end here (the loop sees `closed` and stops reading).
 */
function drained(out: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('error', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('error', done);
    out.on('close', done);
  });
}

const sizes = new Map<string, number | null>();
function fileSize(path: string): number | null {
  if (!sizes.has(path)) {
    try {
      sizes.set(path, statSync(path).size);
    } catch {
      sizes.set(path, null);
    }
  }
  return sizes.get(path)!;
}
