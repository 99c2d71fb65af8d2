/**
 * Reads Postgres's binary COPY output (`COPY ... TO STDOUT (FORMAT binary)`), the format copy.ts writes: an
 * 11-byte signature `PGCOPY\n\377\r\n\0`, int32 flags, int32 header-extension length and the extension, then per
 * row an int16 field count and per field an int32 length (-1: NULL) and the raw bytes; an int16 -1 ends the data.
 * Rows are handed over as they complete, however the bytes are split into chunks, so a million keys are read without
 * pg's per-row text parsing (bytea as hex) and without holding the result.
 */
export class CopyBinaryRows {
  private pending: Buffer = Buffer.alloc(0);
  private headerDone = false;
  private ended = false;

  /** `onRow`: the fields of one row, views of the chunk valid only during the call (null for NULL). */
  constructor(private readonly onRow: (fields: Array<Buffer | null>) => void) {}

  feed(chunk: Buffer): void {
    // Only the tail of a row split between chunks is carried over, so this copies each byte at most twice.
    const b = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let pos = 0;
    if (!this.headerDone) {
      if (b.length < 19) {
        this.pending = Buffer.from(b);
        return;
      }
      if (b.toString('latin1', 0, 11) !== 'PGCOPY\n\xff\r\n\0')
        throw new Error('the COPY output is not in the binary format (no PGCOPY signature)');
      const ext = b.readInt32BE(15);
      if (b.length < 19 + ext) {
        this.pending = Buffer.from(b);
        return;
      }
      pos = 19 + ext;
      this.headerDone = true;
    }
    while (!this.ended && pos + 2 <= b.length) {
      const n = b.readInt16BE(pos);
      if (n === -1) {
        this.ended = true;
        pos += 2;
        break;
      }
      const fields: Array<Buffer | null> = [];
      let p = pos + 2;
      let complete = true;
      for (let i = 0; i < n; i++) {
        if (p + 4 > b.length) {
          complete = false;
          break;
        }
        const len = b.readInt32BE(p);
        p += 4;
        if (len < 0) {
          fields.push(null);
          continue;
        }
        if (p + len > b.length) {
          complete = false;
          break;
        }
        fields.push(b.subarray(p, p + len));
        p += len;
      }
      if (!complete) break;
      this.onRow(fields);
      pos = p;
    }
    this.pending = pos < b.length ? Buffer.from(b.subarray(pos)) : Buffer.alloc(0);
  }
}
