/**
 * Reads Postgres's binary COPY output (`COPY ... TO STDOUT (FORMAT binary)`), the format copy.ts writes: an
 * 11-byte signature `PGCOPY\n\377\r\n\0`, int32 flags, int32 header-extension length and the extension, then per
 * row an int16 field count and per field an int32 length (-1: NULL) and the raw bytes; an int16 -1 ends the data.
 * Rows are handed over as they complete, however the bytes are split into chunks, so a million keys are read without
 * pg's per-row text parsing (bytea as hex) and without holding the result.
 */
export class CopyBinaryRows {
  /** Chunks of a row not complete yet, and how many bytes they must reach before parsing can go on. */
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private need = 0;
  private headerDone = false;
  private ended = false;

  /**
   * `onRow`: one row as where its fields are in `b`: field i from `at[2i]` to `at[2i + 1]`, or `at[2i]` -1 for NULL.
   * `at` is reused for the next row; `b` is not (views of it stay valid).
   */
  constructor(private readonly onRow: (b: Buffer, at: number[]) => void) {}

  feed(chunk: Buffer): void {
    let b = chunk;
    if (this.pending.length > 0) {
      // A row longer than a chunk (a big value) is gathered until it is whole, then joined once.
      this.pending.push(chunk);
      this.pendingLength += chunk.length;
      if (this.pendingLength < this.need) return;
      b = Buffer.concat(this.pending, this.pendingLength);
      this.pending = [];
      this.pendingLength = 0;
    }
    let pos = 0;
    if (!this.headerDone) {
      const ext = b.length >= 19 ? b.readInt32BE(15) : 0;
      if (b.length < 19 + ext) {
        this.keep(b, 0, 19 + ext);
        return;
      }
      if (b.toString('latin1', 0, 11) !== 'PGCOPY\n\xff\r\n\0')
        throw new Error('the COPY output is not in the binary format (no PGCOPY signature)');
      pos = 19 + ext;
      this.headerDone = true;
    }
    const at: number[] = [];
    while (!this.ended) {
      if (pos + 2 > b.length) {
        this.keep(b, pos, 2);
        return;
      }
      const n = b.readInt16BE(pos);
      if (n === -1) {
        this.ended = true;
        return;
      }
      at.length = 0;
      let p = pos + 2;
      for (let i = 0; i < n; i++) {
        if (p + 4 > b.length) {
          this.keep(b, pos, p + 4 - pos);
          return;
        }
        const len = b.readInt32BE(p);
        p += 4;
        if (len < 0) {
          at.push(-1, -1);
          continue;
        }
        if (p + len > b.length) {
          this.keep(b, pos, p + len - pos);
          return;
        }
        at.push(p, p + len);
        p += len;
      }
      this.onRow(b, at);
      pos = p;
    }
  }

  /** Keeps b[from..] until at least `need` bytes of it are there (a lower bound: more may be asked for later). */
  private keep(b: Buffer, from: number, need: number): void {
    if (from >= b.length) return;
    const rest = Buffer.from(b.subarray(from));
    this.pending = [rest];
    this.pendingLength = rest.length;
    this.need = need;
  }
}

/** A jsonb field: a version byte (1), then the JSON text. */
export function jsonb(f: Buffer): unknown {
  if (f[0] !== 1) throw new Error(`unknown jsonb binary format version ${f[0]}`);
  return JSON.parse(f.toString('utf8', 1));
}

const NOT_PARSED = Symbol('not parsed');
/** How Postgres prints the jsonb of a byte string that is not UTF-8 (docs/postgres.md), up to the base64 text. */
const BASE64_HEAD = Buffer.from('{"base64": "', 'latin1');

/**
 * A `keys` row read by COPY whose value is parsed only when asked for: a batch settles most strings by comparing
 * bytes (`stringBytes`), and parsing the JSON of every value was the largest cost of verify's own CPU.
 */
export class CopiedRow {
  private parsed: unknown = NOT_PARSED;
  readonly stringBytes: Buffer | undefined;
  /** For a string stored as `{"base64": ...}` (not UTF-8, or holding NUL): the base64 text. */
  readonly stringBase64: string | undefined;

  constructor(
    readonly type: string,
    /** The jsonb field as COPY sent it (version byte, JSON text). */
    private readonly json: Buffer,
    readonly expire_ms: number | null,
    readonly field_expire_at: unknown,
  ) {
    // A JSON string without backslashes: the bytes between the quotes are the string's UTF-8 (Postgres's jsonb
    // output escapes only '"', '\\' and control characters, always with a backslash).
    if (type !== 'string' || json.indexOf(0x5c, 1) >= 0) return;
    if (json[1] === 0x22) this.stringBytes = json.subarray(2, json.length - 1);
    else if (
      json.length > BASE64_HEAD.length + 2 &&
      json.compare(BASE64_HEAD, 0, BASE64_HEAD.length, 1, BASE64_HEAD.length + 1) === 0
    )
      this.stringBase64 = json.toString('latin1', BASE64_HEAD.length + 1, json.length - 2);
  }

  /** The jsonb field as COPY sent it: a version byte, then the JSON text Postgres prints for the value. */
  get jsonField(): Buffer {
    return this.json;
  }

  get value(): unknown {
    if (this.parsed === NOT_PARSED) this.parsed = jsonb(this.json);
    return this.parsed;
  }
}
