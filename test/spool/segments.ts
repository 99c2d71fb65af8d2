import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

/*
 * A reader of spool segments written here from the format's description in src/spool/records.ts, not with the
 * spool's own code, so that a wrong writer and a wrong reader cannot agree by sharing a mistake.
 *   record := kind:u8 length:u32be offset:f64be crc:u32be payload[length]; crc = CRC-32 of header[0..13] + payload
 */

export const RECORD_HEADER = 17;

export interface DiskRecord {
  /** Segment file name. */
  file: string;
  /** Byte position of the record's header in its file. */
  at: number;
  kind: number;
  length: number;
  offset: number;
  payload: Buffer;
}

/** Segment file names in order. */
export function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => /^\d{16}\.seg$/.test(n))
    .sort();
}

/** Bytes of all segment files. */
export function segmentBytes(dir: string): number {
  return segmentFiles(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

/** The whole valid records of one segment file, and where they stop being valid (the file's size if they do not). */
export function decodeSegment(path: string, file = path): { records: DiskRecord[]; validTo: number } {
  const buf = readFileSync(path);
  const records: DiskRecord[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < RECORD_HEADER) break;
    const kind = buf[at]!;
    const length = buf.readUInt32BE(at + 1);
    const offset = buf.readDoubleBE(at + 5);
    const crc = buf.readUInt32BE(at + 13);
    if (at + RECORD_HEADER + length > buf.length) break;
    const payload = buf.subarray(at + RECORD_HEADER, at + RECORD_HEADER + length);
    if (crc32(payload, crc32(buf.subarray(at, at + 13))) !== crc) break;
    records.push({ file, at, kind, length, offset, payload: Buffer.from(payload) });
    at += RECORD_HEADER + length;
  }
  return { records, validTo: at };
}

/** Every record of every segment; throws on anything that is not a whole valid record. */
export function readSpool(dir: string): DiskRecord[] {
  const out: DiskRecord[] = [];
  for (const file of segmentFiles(dir)) {
    const path = join(dir, file);
    const { records, validTo } = decodeSegment(path, file);
    if (validTo !== statSync(path).size)
      throw new Error(`${file}: not a whole valid record at byte ${validTo}`);
    out.push(...records);
  }
  return out;
}

/** Offset of the last record in the spool (-1 when empty); tolerates a record being written at the end. */
export function spoolEndOffset(dir: string): number {
  const files = segmentFiles(dir);
  for (let i = files.length - 1; i >= 0; i--) {
    const { records } = decodeSegment(join(dir, files[i]!), files[i]);
    if (records.length > 0) return records.at(-1)!.offset;
  }
  return -1;
}
