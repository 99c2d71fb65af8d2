import { Cursor } from './Cursor.js';
import { crc64 } from './crc64.js';
import { RdbFormatError } from './RdbFormatError.js';
import type { RdbKeyRecord } from './records.js';
import { Opcode, type RdbFlavor, typeTable, UNSUPPORTED_TYPES } from './types.js';
import {
  CollectionReader,
  isCollectionLayout,
  moduleInfo,
  readAtomicValue,
  skipModuleValue,
} from './ValueDecoder.js';

/** A decoded DUMP payload: the value part of a key record (no key, db or expiry travel in a payload). */
export type DumpValue = Pick<
  RdbKeyRecord,
  'type' | 'encoding' | 'rdbType' | 'layout' | 'value' | 'fieldExpireAt' | 'module' | 'keyMeta'
> & {
  /** The RDB version in the payload footer. */
  rdbVersion: number;
  flavor: RdbFlavor;
};

export interface DumpOptions {
  /** Accept a payload whose CRC64 footer does not match. */
  ignoreChecksum?: boolean;
  /**
   * Which type table applies. DUMP payloads carry only a version number: Valkey 9 writes 80 (its own numbering),
   * so versions ≥ 80 default to Valkey and lower ones to Redis.
   */
  flavor?: RdbFlavor;
}

/**
 * Decodes a DUMP/RESTORE payload: <object type><value><RDB version uint16 LE><CRC64 uint64 LE>, the CRC covering
 * everything before it (Redis's createDumpPayload/verifyDumpPayload). Redis 8.6+ may put a KEY_META block before
 * the type byte. Offsets in errors are relative to the payload start.
 */
export function decodeDumpPayload(payload: Buffer, opts: DumpOptions = {}): DumpValue {
  const n = payload.length;
  if (n < 11) throw new RdbFormatError(0, `DUMP payload of ${n} bytes is too short`);
  const rdbVersion = payload.readUInt16LE(n - 10);
  const footer = payload.readBigUInt64LE(n - 8);
  // A zero CRC means the server had rdbchecksum disabled.
  if (footer !== 0n && !opts.ignoreChecksum) {
    const computed = crc64(payload, 0, n - 8);
    if (computed !== footer)
      throw new RdbFormatError(
        n - 8,
        `DUMP payload CRC64 mismatch: payload says ${footer.toString(16)}, computed ${computed.toString(16)}`,
      );
  }
  const flavor: RdbFlavor = opts.flavor ?? (rdbVersion >= 80 ? 'valkey' : 'redis');
  const c = new Cursor(payload, 0, n - 10, 0, true);
  let t = c.u8();
  let keyMeta: Buffer | undefined;
  if (t === Opcode.KEY_META_OR_SLOT_IMPORT && flavor === 'redis') {
    const count = c.readLen();
    const start = c.pos;
    for (let i = 0; i < count; i++) {
      c.need(4);
      c.pos += 4;
      skipModuleValue(c);
    }
    keyMeta = payload.subarray(start, c.pos);
    t = c.u8();
  }
  const info = typeTable(flavor)[t];
  if (!info) throw new RdbFormatError(c.pos - 1, UNSUPPORTED_TYPES[t] ?? `unknown object type ${t}`);
  const rec: RdbKeyRecord = {
    db: 0,
    key: Buffer.alloc(0),
    type: info.type,
    encoding: info.encoding,
    rdbType: t,
    layout: info.layout,
    expireAt: null,
    value: undefined,
    offset: 0,
    size: n,
  };
  if (isCollectionLayout(info.layout)) {
    const minExpire = info.layout === 'hash-metadata' ? c.int64LE() : 0;
    const coll = new CollectionReader(info.layout, c.readLen(), true, minExpire);
    coll.step(c, Number.POSITIVE_INFINITY);
    coll.flushInto(rec, true);
  } else if (info.layout === 'module-pre-ga') {
    rec.module = moduleInfo(c.readLenBig());
    rec.value = payload.subarray(c.pos, n - 10);
    c.pos = n - 10;
  } else {
    readAtomicValue(c, info.layout, true, rec, info.streamVersion ?? 0);
  }
  if (c.pos !== n - 10) throw new RdbFormatError(c.pos, `${n - 10 - c.pos} unexpected bytes after the value`);
  const out: DumpValue = {
    type: rec.type,
    encoding: rec.encoding,
    rdbType: t,
    layout: rec.layout,
    value: rec.value,
    rdbVersion,
    flavor,
  };
  if (rec.fieldExpireAt) out.fieldExpireAt = rec.fieldExpireAt;
  if (rec.module) out.module = rec.module;
  if (keyMeta) out.keyMeta = keyMeta;
  return out;
}
