import { ByteView, Cursor, NEED_MORE } from './Cursor.js';
import { Crc64 } from './crc64.js';
import { walkIntset } from './intset.js';
import { type PackedVisitor, walkListpack } from './listpack.js';
import { RdbFormatError } from './RdbFormatError.js';
import type { DirectPackedLayout, RdbKeyRecord, RdbPackedKey, RdbStringKey, RdbSummary } from './records.js';
import {
  MAX_KNOWN_VERSION,
  Opcode,
  type RdbFlavor,
  type TypeInfo,
  typeTable,
  UNSUPPORTED_TYPES,
} from './types.js';
import {
  CollectionReader,
  isCollectionLayout,
  moduleInfo,
  readAtomicValue,
  skipModuleValue,
} from './ValueDecoder.js';

export interface ModuleAuxRecord {
  module: ReturnType<typeof moduleInfo>;
  when: number;
  /** The serialized aux value (module2 framing), opaque. */
  raw: Buffer;
}

export interface RdbParserOptions {
  onKey(rec: RdbKeyRecord): void;
  /**
   * When set, string keys (that come whole) go here instead of `onKey`, without a Buffer per key and value: the
   * record is reused and its bytes are valid only during the call (for `redtail rdb`, which encodes them at once).
   */
  onStringKey?(k: RdbStringKey): void;
  /**
   * When set, keys whose value is one intset or listpack blob (sets, small zsets and hashes) go here instead of
   * `onKey`, checked but not decoded: the record is reused and valid only during the call.
   */
  onPackedKey?(k: RdbPackedKey): void;
  onAux?(name: string, value: Buffer): void;
  onDb?(db: number): void;
  onResizeDb?(db: number, keys: number, expires: number): void;
  onSlotInfo?(slot: number, keys: number, expires: number): void;
  onFunction?(code: Buffer, meta?: { name: Buffer; engine: Buffer }): void;
  onModuleAux?(aux: ModuleAuxRecord): void;
  /** Valkey 9 SLOT_IMPORT: an in-progress slot import job and its slot ranges. */
  onSlotImport?(job: Buffer, ranges: Array<[number, number]>): void;
  onEnd?(summary: RdbSummary): void;
  /** Accept a file whose trailing CRC64 does not match (it is still read). */
  ignoreChecksum?: boolean;
  /**
   * false: the caller computes and checks the CRC64 itself (Crc64Thread, on another thread); the parser computes
   * none and reports a stored non-zero checksum as 'unchecked'. Default true.
   */
  checksum?: boolean;
  /**
   * Values whose encoded size passes this many bytes come out in parts (records with `part`/`last`) instead of
   * one record: raw strings (as Buffer chunks) and list/set/zset/hash values stored element by element or as
   * quicklists. Other encodings are bounded by Redis's *-max-listpack-* limits and always come whole.
   */
  streamThreshold?: number;
  /** Build values (default true). false walks and checks the framing only, for `--stats`. */
  values?: boolean;
  /**
   * Largest single unit (a string, a packed blob, a whole stream) buffered before giving up, so a corrupt length
   * cannot make the parser hoard input. Default 1 GiB (Redis's proto-max-bulk-len defaults to 512 MB).
   */
  maxUnitBytes?: number;
}

enum State {
  Header,
  Body,
  Collection,
  BigString,
  Checksum,
  Done,
  Failed,
}

const MIN_BUFFER = 64 * 1024;

/** A visitor that only lets the walk count and check. */
const COUNT: PackedVisitor = { str() {}, int() {} };

function isDirectPacked(layout: string): layout is DirectPackedLayout {
  return (
    layout === 'intset' ||
    layout === 'set-listpack' ||
    layout === 'zset-listpack' ||
    layout === 'hash-listpack'
  );
}

class CallbackError {
  constructor(readonly cause: unknown) {}
}

/**
 * Incremental RDB parser. Feed it chunks with `write` and finish with `end`; it calls `onKey` once per key (or once
 * per part in streaming mode) synchronously from inside `write`.
 *
 * It is a state machine over a window of unconsumed input: each unit (an opcode with its operands, a key with an
 * atomic value, or one element of a collection) is parsed from a committed position; when the window ends mid-unit
 * the cursor throws NEED_MORE, the position rolls back to the last commit, and parsing resumes when enough bytes
 * arrived. New chunks are adopted without copying when nothing is pending and appended to a geometrically grown
 * buffer otherwise, so the cost stays linear; no chunk is ever modified, so Buffers handed out in records stay
 * valid. Only the unit being parsed is ever buffered.
 */
export class RdbParser {
  private readonly c = new Cursor(Buffer.alloc(0), 0, 0, 0, false);
  private owned: Buffer | null = null;
  private state = State.Header;
  private commit = 0;
  private minAvail = 0;
  private failure: RdbFormatError | null = null;
  private readonly crc = new Crc64();
  private crcDone = 0;
  private crcFrozen = false;

  private version = 0;
  private flavor: RdbFlavor = 'redis';
  private types: Array<TypeInfo | undefined> = typeTable('redis');
  private db = 0;
  private expireAt: number | null = null;
  private idle: number | undefined;
  private freq: number | undefined;
  private keyMeta: Buffer | undefined;
  private keys = 0;
  private readonly keysPerDb: Record<number, number> = {};
  private readonly aux: Record<string, string> = {};
  private functions = 0;
  private checksum: RdbSummary['checksum'] = 'absent';

  private readonly stringKey: RdbStringKey = {
    db: 0,
    key: new ByteView(),
    value: new ByteView(),
    expireAt: null,
    offset: 0,
    size: 0,
  };
  private readonly packedKey: RdbPackedKey = {
    db: 0,
    key: new ByteView(),
    type: 'set',
    encoding: '',
    layout: 'intset',
    blob: new ByteView(),
    blobBase: 0,
    expireAt: null,
    offset: 0,
    size: 0,
  };
  private coll: CollectionReader | null = null;
  private collRec: RdbKeyRecord | null = null;
  private part = 0;
  private partStart = 0;
  private bigRemaining = 0;

  /** Set by end(): no more input will come, so speculative parsing must decide with what is buffered. */
  private ending = false;
  private readonly build: boolean;
  private readonly computeCrc: boolean;
  private readonly threshold: number;
  private readonly maxUnit: number;

  constructor(private readonly opts: RdbParserOptions) {
    this.build = opts.values !== false;
    this.computeCrc = opts.checksum !== false;
    this.threshold =
      opts.streamThreshold && opts.streamThreshold > 0 ? opts.streamThreshold : Number.POSITIVE_INFINITY;
    this.maxUnit = opts.maxUnitBytes ?? 1024 * 1024 * 1024;
  }

  /** Bytes consumed so far (fully parsed). */
  get offset(): number {
    return this.c.base + this.commit;
  }

  write(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    if (this.state === State.Done) {
      throw this.setFailure(new RdbFormatError(this.c.base + this.c.end, 'data after the end of the RDB'));
    }
    this.append(chunk);
    if (this.c.end - this.c.pos < this.minAvail) return;
    this.run();
  }

  end(): RdbSummary {
    if (this.failure) throw this.failure;
    // Units left pending by the doubling rule in run() may be complete now that no more bytes will come.
    this.ending = true;
    if (this.state !== State.Done && this.c.end > this.c.pos) this.run();
    if (this.state !== State.Done) {
      const c = this.c;
      throw this.setFailure(
        new RdbFormatError(
          c.base + c.end,
          `unexpected end of input (${this.describeState()} starting at offset ${c.base + this.commit} is incomplete)`,
        ),
      );
    }
    const summary = this.summary();
    this.opts.onEnd?.(summary);
    return summary;
  }

  private summary(): RdbSummary {
    const replOffset = this.aux['repl-offset'];
    return {
      version: this.version,
      flavor: this.flavor,
      keys: this.keys,
      keysPerDb: { ...this.keysPerDb },
      bytes: this.c.base + this.c.end,
      checksum: this.checksum,
      aux: { ...this.aux },
      replId: this.aux['repl-id'] ?? null,
      replOffset: replOffset !== undefined ? Number(replOffset) : null,
      functions: this.functions,
    };
  }

  private describeState(): string {
    switch (this.state) {
      case State.Header:
        return 'the header';
      case State.Collection:
      case State.BigString:
        return `the value of a ${this.collRec?.encoding} key`;
      case State.Checksum:
        return 'the CRC64 trailer';
      default:
        return 'a record';
    }
  }

  private setFailure(err: RdbFormatError): RdbFormatError {
    this.failure = err;
    this.state = State.Failed;
    return err;
  }

  private append(chunk: Buffer): void {
    const c = this.c;
    const rest = c.end - c.pos;
    if (rest === 0) {
      c.base += c.end;
      c.buf = chunk;
      c.pos = 0;
      c.end = chunk.length;
      this.commit = 0;
      this.crcDone = 0;
      this.owned = null;
      return;
    }
    if (this.owned === c.buf && c.end + chunk.length <= c.buf.length) {
      chunk.copy(c.buf, c.end);
      c.end += chunk.length;
      return;
    }
    // Bytes before pos were parsed (and checksummed); views into the old buffer stay valid since it is not reused.
    const need = rest + chunk.length;
    const cap = Math.max(MIN_BUFFER, need * 2 > this.maxUnit ? need : need * 2);
    const nb = Buffer.allocUnsafe(cap);
    c.buf.copy(nb, 0, c.pos, c.end);
    chunk.copy(nb, rest);
    this.crcDone -= c.pos;
    c.base += c.pos;
    c.buf = nb;
    c.pos = 0;
    c.end = need;
    this.commit = 0;
    this.owned = nb;
  }

  private run(): void {
    const c = this.c;
    this.minAvail = 0;
    try {
      for (;;) {
        switch (this.state) {
          case State.Body:
            this.parseItem();
            break;
          case State.Collection:
            this.stepCollection();
            break;
          case State.BigString:
            this.stepBigString();
            break;
          case State.Header:
            this.parseHeader();
            break;
          case State.Checksum:
            this.parseChecksum();
            break;
          default:
            this.updateCrc();
            return;
        }
      }
    } catch (err) {
      if (err instanceof CallbackError) {
        // Callbacks only run once their unit has been read completely.
        this.commit = c.pos;
        this.updateCrc();
        throw err.cause;
      }
      if (err !== NEED_MORE) {
        throw this.setFailure(this.wrap(err));
      }
      if (this.state === State.Collection) this.commit = this.coll!.lastPos;
      c.pos = this.commit;
      const want = c.wantEnd - this.commit;
      if (want > this.maxUnit)
        throw this.setFailure(
          new RdbFormatError(
            c.base + this.commit,
            `a single unit of ${want} bytes exceeds the ${this.maxUnit}-byte limit (corrupt length?)`,
          ),
        );
      // Waiting for at least twice the current window bounds re-parsing of big atomic values to O(log n) passes.
      this.minAvail = Math.min(Math.max(want, 2 * (c.end - this.commit)), this.maxUnit);
      this.updateCrc();
    }
  }

  /**
   * Runs a user callback. Its exceptions are not input errors: they pass through unchanged (the unit is
   * committed, so the parser stays usable) instead of being turned into an RdbFormatError.
   */
  private user(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      throw new CallbackError(err);
    }
  }

  private wrap(err: unknown): RdbFormatError {
    if (err instanceof RdbFormatError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    return new RdbFormatError(this.c.base + this.c.pos, `malformed data (${msg})`);
  }

  private updateCrc(): void {
    if (this.crcFrozen || !this.computeCrc) return;
    if (this.commit > this.crcDone) {
      this.crc.update(this.c.buf, this.crcDone, this.commit);
      this.crcDone = this.commit;
    }
  }

  private parseHeader(): void {
    const c = this.c;
    c.need(9);
    const magic = c.buf.toString('latin1', c.pos, c.pos + 9);
    let version: number;
    if (magic.startsWith('REDIS') && /^\d{4}$/.test(magic.slice(5))) {
      version = Number(magic.slice(5));
      this.flavor = 'redis';
    } else if (magic.startsWith('VALKEY') && /^\d{3}$/.test(magic.slice(6))) {
      version = Number(magic.slice(6));
      this.flavor = 'valkey';
    } else {
      throw c.fail(`not an RDB file (header ${JSON.stringify(magic)})`);
    }
    if (version < 1 || version > MAX_KNOWN_VERSION[this.flavor] + 50)
      throw c.fail(`unsupported RDB version ${version}`);
    this.version = version;
    this.types = typeTable(this.flavor);
    c.pos += 9;
    this.commit = c.pos;
    this.state = State.Body;
  }

  private parseChecksum(): void {
    const c = this.c;
    if (this.version < 5) {
      this.checksum = 'absent';
      this.state = State.Done;
      return;
    }
    c.need(8);
    const at = c.pos;
    let zero = true;
    for (let i = 0; i < 8; i++) if (c.buf[at + i] !== 0) zero = false;
    if (zero) this.checksum = 'disabled';
    else if (!this.computeCrc) this.checksum = 'unchecked';
    else if (this.crc.matchesLE(c.buf, at)) this.checksum = 'ok';
    else if (this.opts.ignoreChecksum) this.checksum = 'skipped';
    else {
      const stored = c.buf.readBigUInt64LE(at).toString(16).padStart(16, '0');
      throw c.fail(`CRC64 mismatch: file says ${stored}, computed ${this.crc.toHex()}`);
    }
    c.pos += 8;
    this.commit = c.pos;
    this.state = State.Done;
  }

  private parseItem(): void {
    const c = this.c;
    const start = c.pos;
    const t = c.u8();
    if (t < 0xf0) {
      this.parseKey(t, start);
      return;
    }
    switch (t) {
      case Opcode.EXPIRETIME_MS:
        this.expireAt = c.int64LE();
        break;
      case Opcode.EXPIRETIME:
        this.expireAt = c.u32LE() * 1000;
        break;
      case Opcode.SELECTDB:
        this.db = c.readLen();
        this.user(() => this.opts.onDb?.(this.db));
        break;
      case Opcode.RESIZEDB:
        this.parseResizeDb();
        break;
      case Opcode.AUX:
        this.parseAux();
        break;
      case Opcode.IDLE:
        this.idle = c.readLen();
        break;
      case Opcode.FREQ:
        this.freq = c.u8();
        break;
      case Opcode.SLOT_INFO:
        this.parseSlotInfo();
        break;
      case Opcode.FUNCTION2:
      case Opcode.FUNCTION_PRE_GA:
        this.parseFunction(t === Opcode.FUNCTION_PRE_GA);
        break;
      case Opcode.MODULE_AUX:
        this.parseModuleAux();
        break;
      case Opcode.KEY_META_OR_SLOT_IMPORT:
        if (this.flavor === 'valkey') this.parseSlotImport();
        else this.parseKeyMeta(start);
        break;
      case Opcode.EOF:
        this.commit = c.pos;
        this.updateCrc();
        this.crcFrozen = true;
        this.state = State.Checksum;
        return;
      default:
        throw c.fail(`unknown opcode ${t} (${this.flavor} RDB version ${this.version})`, start);
    }
    this.commit = c.pos;
  }

  /** RDB_OPCODE_RESIZEDB: the sizes of the db's main and expires dicts (a hint for the loader). */
  private parseResizeDb(): void {
    const keys = this.c.readLen();
    const expires = this.c.readLen();
    this.user(() => this.opts.onResizeDb?.(this.db, keys, expires));
  }

  /** RDB_OPCODE_AUX: a name and a value (redis-ver, repl-id, slot-info on Valkey, ...). */
  private parseAux(): void {
    const name = this.c.readString().toString('utf8');
    const raw = this.c.readString();
    this.aux[name] = raw.toString('utf8');
    this.user(() => this.opts.onAux?.(name, raw));
    if (name === 'slot-info') this.slotInfoAux(raw);
  }

  /** RDB_OPCODE_SLOT_INFO (Redis 7.2+ cluster): a slot's key and expiring-key counts. */
  private parseSlotInfo(): void {
    const c = this.c;
    const slot = c.readLen();
    const keys = c.readLen();
    const expires = c.readLen();
    this.user(() => this.opts.onSlotInfo?.(slot, keys, expires));
  }

  /** RDB_OPCODE_FUNCTION2 (the library's code), or Redis 7.0 RC1/RC2's name, engine, optional description, code. */
  private parseFunction(preGa: boolean): void {
    const c = this.c;
    // Count only once the whole record is read: a record cut by the chunk's end is parsed again from its start.
    if (!preGa) {
      const code = c.readString();
      this.functions++;
      this.user(() => this.opts.onFunction?.(code));
      return;
    }
    const name = c.readString();
    const engine = c.readString();
    if (c.readLen() !== 0) c.skipString();
    const code = c.readString();
    this.functions++;
    this.user(() => this.opts.onFunction?.(code, { name, engine }));
  }

  /** RDB_OPCODE_MODULE_AUX: module id, "when" (an RDB_MODULE_OPCODE_UINT and its value), then the module's value. */
  private parseModuleAux(): void {
    const c = this.c;
    const id = c.readLenBig();
    const whenAt = c.pos;
    const whenOp = c.readLen();
    if (whenOp !== 2) throw c.fail(`module aux "when" is not an unsigned integer opcode (${whenOp})`, whenAt);
    const when = c.readLen();
    const vstart = c.pos;
    skipModuleValue(c);
    const raw = c.buf.subarray(vstart, c.pos);
    this.user(() => this.opts.onModuleAux?.({ module: moduleInfo(id), when, raw }));
  }

  /**
   * Valkey 8.0+ in cluster mode writes the per-slot counts Redis keeps in RDB_OPCODE_SLOT_INFO as one AUX field
   * `slot-info` = "<slot>,<keys>,<expires>" before each slot's keys (headers still say REDIS00xx). Reported
   * through onSlotInfo like the opcode; a value of another shape stays a plain AUX field.
   */
  private slotInfoAux(value: Buffer): void {
    const m = /^(\d{1,5}),(\d{1,15}),(\d{1,15})$/.exec(value.toString('latin1'));
    if (!m) return;
    this.user(() => this.opts.onSlotInfo?.(Number(m[1]), Number(m[2]), Number(m[3])));
  }

  private parseSlotImport(): void {
    const c = this.c;
    const job = c.readString();
    const n = c.readLen();
    const ranges: Array<[number, number]> = [];
    for (let i = 0; i < n; i++) ranges.push([c.readLen(), c.readLen()]);
    this.user(() => this.opts.onSlotImport?.(job, ranges));
  }

  /** RDB 13 KEY_META: a class count, then per class a 4-byte class spec and a module-framed value ending in EOF. */
  private parseKeyMeta(start: number): void {
    const c = this.c;
    const n = c.readLen();
    if (n > 32) throw c.fail(`KEY_META lists ${n} metadata classes`, start);
    const vstart = c.pos;
    for (let i = 0; i < n; i++) {
      c.need(4);
      c.pos += 4;
      skipModuleValue(c);
    }
    this.keyMeta = c.buf.subarray(vstart, c.pos);
  }

  private parseKey(t: number, start: number): void {
    const c = this.c;
    const info = this.types[t];
    if (!info) {
      const why = UNSUPPORTED_TYPES[t];
      throw c.fail(why ?? `unknown object type ${t} (${this.flavor} RDB version ${this.version})`, start);
    }
    const onStringKey = this.opts.onStringKey;
    if (info.layout === 'string' && onStringKey !== undefined && this.build) {
      if (this.threshold === Number.POSITIVE_INFINITY || !this.isBigString(c)) {
        this.directString(start, onStringKey);
        return;
      }
    }
    const onPackedKey = this.opts.onPackedKey;
    if (onPackedKey !== undefined && this.build && isDirectPacked(info.layout)) {
      this.directPacked(start, info, info.layout, onPackedKey);
      return;
    }
    const key = c.readString();
    const rec: RdbKeyRecord = {
      db: this.db,
      key,
      type: info.type,
      encoding: info.encoding,
      rdbType: t,
      layout: info.layout,
      expireAt: this.expireAt,
      value: undefined,
      offset: c.base + start,
      size: 0,
    };
    if (this.idle !== undefined) rec.idle = this.idle;
    if (this.freq !== undefined) rec.freq = this.freq;
    if (this.keyMeta !== undefined) rec.keyMeta = this.keyMeta;
    const layout = info.layout;
    if (isCollectionLayout(layout)) {
      let minExpire = 0;
      if (layout === 'hash-metadata') minExpire = c.int64LE();
      const count = c.readLen();
      this.resetKeyState();
      this.coll = new CollectionReader(layout, count, this.build, minExpire);
      this.collRec = rec;
      this.part = 0;
      this.commit = c.pos;
      this.partStart = c.base + c.pos;
      this.state = State.Collection;
      return;
    }
    if (layout === 'module-pre-ga') {
      this.readPreGaModule(rec);
      return;
    }
    if (layout === 'string' && this.threshold !== Number.POSITIVE_INFINITY) {
      const len = c.peekRawStringLength();
      if (len > this.threshold) {
        c.readLen();
        this.resetKeyState();
        this.collRec = rec;
        this.bigRemaining = len;
        this.part = 0;
        this.commit = c.pos;
        this.state = State.BigString;
        return;
      }
    }
    readAtomicValue(c, layout, this.build, rec, info.streamVersion ?? 0);
    rec.size = c.base + c.pos - rec.offset;
    this.resetKeyState();
    this.commit = c.pos;
    this.emit(rec);
  }

  /** Whether the string value after the key (at c.pos) passes the stream threshold; c.pos is left unchanged. */
  private isBigString(c: Cursor): boolean {
    const at = c.pos;
    try {
      c.skipString();
      return c.peekRawStringLength() > this.threshold;
    } finally {
      c.pos = at;
    }
  }

  /** A string key for onStringKey: key and value located by views, no Buffer and no record built. */
  private directString(start: number, onStringKey: (k: RdbStringKey) => void): void {
    const c = this.c;
    const k = this.stringKey;
    c.readStringView(k.key);
    c.readStringView(k.value);
    k.db = this.db;
    k.expireAt = this.expireAt;
    this.directDone(k, start, onStringKey);
  }

  /** Ends a key read for onStringKey/onPackedKey: where it stood in the file, the counts, then the callback. */
  private directDone<K extends { db: number; offset: number; size: number }>(
    k: K,
    start: number,
    callback: (k: K) => void,
  ): void {
    const c = this.c;
    k.offset = c.base + start;
    k.size = c.pos - start;
    this.resetKeyState();
    this.commit = c.pos;
    this.keys++;
    this.keysPerDb[k.db] = (this.keysPerDb[k.db] ?? 0) + 1;
    try {
      callback(k);
    } catch (err) {
      throw new CallbackError(err);
    }
  }

  /**
   * A key whose value is one intset or listpack blob, for onPackedKey: the blob is walked once here with the checks
   * and error offsets of readAtomicValue (an LZF-compressed blob's errors point at its string), nothing is built.
   */
  private directPacked(
    start: number,
    info: TypeInfo,
    layout: DirectPackedLayout,
    onPackedKey: (k: RdbPackedKey) => void,
  ): void {
    const c = this.c;
    const k = this.packedKey;
    c.readStringView(k.key);
    const at = c.base + c.pos;
    c.readStringView(k.blob);
    const b = k.blob;
    const view = b.buf === c.buf;
    k.blobBase = view ? c.base + b.start : at;
    try {
      const n =
        layout === 'intset'
          ? walkIntset(b.buf, b.start, b.end, k.blobBase, COUNT)
          : walkListpack(b.buf, b.start, b.end, k.blobBase, COUNT);
      if (n % 2 !== 0 && layout !== 'intset' && layout !== 'set-listpack') {
        const what = layout === 'zset-listpack' ? 'zset listpack' : 'hash listpack';
        throw new RdbFormatError(k.blobBase, `${what} has an odd number of elements (${n})`);
      }
    } catch (err) {
      if (view || !(err instanceof RdbFormatError)) throw err;
      throw new RdbFormatError(at, `${err.reason} (inside an LZF-compressed blob)`);
    }
    k.db = this.db;
    k.type = info.type;
    k.encoding = info.encoding;
    k.layout = layout;
    k.expireAt = this.expireAt;
    this.directDone(k, start, onPackedKey);
  }

  /**
   * RDB_TYPE_MODULE_PRE_GA (Redis 4.0 release candidates) stored module values without the module2 opcode framing,
   * so only the module itself knows where they end; Redis refuses such files. To still read the rest of the file,
   * the value is taken to end at the first position from which the following records parse cleanly (up to 16 of
   * them, or the EOF opcode). Best effort by nature: the value's bytes are reported opaque.
   */
  private readPreGaModule(rec: RdbKeyRecord): void {
    const c = this.c;
    rec.module = moduleInfo(c.readLenBig());
    const vstart = c.pos;
    const window = 256 * 1024;
    if (!this.ending && c.end - vstart < window) {
      c.wantEnd = vstart + window;
      throw NEED_MORE;
    }
    const limit = Math.min(c.end - 1, vstart + window);
    let found = -1;
    const wasFinal = c.final;
    c.final = true;
    try {
      for (let e = vstart + 1; e <= limit && found < 0; e++) {
        c.pos = e;
        c.ranOut = false;
        try {
          if (this.probe(c)) found = e;
        } catch (err) {
          if (!(err instanceof RdbFormatError)) throw err;
        }
      }
    } finally {
      c.final = wasFinal;
    }
    if (found < 0)
      throw c.fail('cannot find the end of a module value in the pre-GA format (type 6)', vstart);
    if (this.build) rec.value = c.buf.subarray(vstart, found);
    c.pos = found;
    rec.size = c.base + c.pos - rec.offset;
    this.resetKeyState();
    this.commit = c.pos;
    this.emit(rec);
  }

  /** Speculatively parses up to 16 records from c.pos without side effects; true if they all parse. */
  private probe(c: Cursor): boolean {
    const scratch = { value: undefined } as RdbKeyRecord;
    for (let n = 0; n < 16; n++) {
      const t = c.u8();
      if (t >= 0xf0) {
        switch (t) {
          case Opcode.EOF:
            return c.end - c.pos <= 8;
          case Opcode.EXPIRETIME_MS:
            c.int64LE();
            break;
          case Opcode.EXPIRETIME:
            c.u32LE();
            break;
          case Opcode.SELECTDB:
          case Opcode.IDLE:
            c.readLen();
            break;
          case Opcode.FREQ:
            c.u8();
            break;
          case Opcode.RESIZEDB:
            c.readLen();
            c.readLen();
            break;
          case Opcode.AUX:
            c.readString();
            c.readString();
            break;
          default:
            return false;
        }
        continue;
      }
      const info = this.types[t];
      if (!info) return false;
      c.readString();
      if (info.layout === 'module-pre-ga') return true;
      if (isCollectionLayout(info.layout)) {
        if (info.layout === 'hash-metadata') c.int64LE();
        new CollectionReader(info.layout, c.readLen(), true, 0).step(c, Number.POSITIVE_INFINITY);
      } else {
        readAtomicValue(c, info.layout, true, scratch, info.streamVersion ?? 0);
      }
    }
    return true;
  }

  private resetKeyState(): void {
    this.expireAt = null;
    this.idle = undefined;
    this.freq = undefined;
    this.keyMeta = undefined;
  }

  private emit(rec: RdbKeyRecord): void {
    if (rec.part === undefined || rec.last) {
      this.keys++;
      this.keysPerDb[rec.db] = (this.keysPerDb[rec.db] ?? 0) + 1;
    }
    this.user(() => this.opts.onKey(rec));
  }

  private partRecord(base: RdbKeyRecord, last: boolean): RdbKeyRecord {
    const rec: RdbKeyRecord = { ...base, value: undefined, part: this.part++, last };
    delete rec.fieldExpireAt;
    return rec;
  }

  private stepCollection(): void {
    const c = this.c;
    const coll = this.coll!;
    const base = this.collRec!;
    for (;;) {
      const stopAt =
        this.threshold === Number.POSITIVE_INFINITY
          ? Number.POSITIVE_INFINITY
          : this.partStart - c.base + this.threshold;
      const done = coll.step(c, stopAt);
      this.commit = coll.lastPos;
      if (done) {
        let rec = base;
        if (this.part > 0) rec = this.partRecord(base, true);
        coll.flushInto(rec, this.part === 0);
        rec.size = c.base + c.pos - base.offset;
        this.coll = null;
        this.collRec = null;
        this.state = State.Body;
        this.emit(rec);
        return;
      }
      const rec = this.partRecord(base, false);
      coll.flushInto(rec, false);
      rec.size = c.base + c.pos - this.partStart;
      this.partStart = c.base + c.pos;
      this.emit(rec);
    }
  }

  private stepBigString(): void {
    const c = this.c;
    const base = this.collRec!;
    while (this.bigRemaining > 0) {
      const n = Math.min(this.bigRemaining, this.threshold);
      c.need(n);
      const rec = this.partRecord(base, this.bigRemaining === n);
      if (this.build) rec.value = c.buf.subarray(c.pos, c.pos + n);
      c.pos += n;
      this.bigRemaining -= n;
      this.commit = c.pos;
      rec.size = n;
      this.emit(rec);
    }
    this.collRec = null;
    this.state = State.Body;
  }
}
