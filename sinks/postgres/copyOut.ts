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

  /** `onRow`: the fields of one row, views of the chunk valid only during the call (null for NULL). */
  constructor(private readonly onRow: (fields: Array<Buffer | null>) => void) {}

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
    const fields: Array<Buffer | null> = [];
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
      fields.length = 0;
      let p = pos + 2;
      for (let i = 0; i < n; i++) {
        if (p + 4 > b.length) {
          this.keep(b, pos, p + 4 - pos);
          return;
        }
        const len = b.readInt32BE(p);
        p += 4;
        if (len < 0) {
          fields.push(null);
          continue;
        }
        if (p + len > b.length) {
          this.keep(b, pos, p + len - pos);
          return;
        }
        fields.push(b.subarray(p, p + len));
        p += len;
      }
      this.onRow(fields);
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

/** An int8 field. */
export const int8 = (f: Buffer): number => Number(f.readBigInt64BE(0));

/** A jsonb field: a version byte (1), then the JSON text. */
export function jsonb(f: Buffer): unknown {
  if (f[0] !== 1) throw new Error(`unknown jsonb binary format version ${f[0]}`);
  return JSON.parse(f.toString('utf8', 1));
}
