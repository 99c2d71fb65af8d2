import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  fieldTtlToJson,
  snapshotJson,
  valueFromRdb,
  valueToJson,
} from '../../../sinks/postgres/model/encoding.js';

/** Byte strings that take every encoding branch: UTF-8, NUL, invalid UTF-8, empty, prefixes of each other. */
function bytes(i: number): Buffer {
  switch (i % 6) {
    case 0:
      return Buffer.from(`m${i}`);
    case 1:
      return Buffer.from([0, i & 0xff]);
    case 2:
      return Buffer.from([0xff, 0xfe, i & 0xff]);
    case 3:
      return Buffer.from(`é${'"\\\n'.repeat(i % 3)}`);
    case 4:
      return Buffer.alloc(0);
    default:
      return randomBytes(1 + (i % 9));
  }
}

/** Distinct members (a set, hash or zset holds each once). */
function distinct(n: number): Buffer[] {
  const seen = new Map<string, Buffer>();
  for (let i = 0; seen.size < n; i++) seen.set(bytes(i).toString('latin1'), bytes(i));
  return [...seen.values()].sort(() => Math.random() - 0.5);
}

function viaModel(type: string, value: unknown, ttl?: Array<[Buffer, number]>) {
  const v = valueFromRdb(type, value, ttl);
  return {
    type: v.type,
    json: JSON.stringify(valueToJson(v)),
    fieldTtl: v.type === 'hash' ? JSON.stringify(fieldTtlToJson(v)) : null,
  };
}

describe('snapshotJson', () => {
  it('gives the texts the model gives, for every type and hostile bytes', () => {
    for (let round = 0; round < 50; round++) {
      const ms = distinct(1 + (round % 17));
      const scores = [1.5, -0, 0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 3, 3, -2.25e-300];
      const cases: Array<[string, unknown, Array<[Buffer, number]>?]> = [
        ['string', bytes(round)],
        ['list', [...ms, ms[0]!]],
        ['set', ms],
        ['hash', ms.map((m, i) => [m, bytes(i + round)])],
        ['hash', ms.map((m, i) => [m, bytes(i)]), ms.slice(0, 2).map((m, i) => [m, 1_900_000_000_000 + i])],
        ['zset', ms.map((m, i) => [m, scores[(i + round) % scores.length]])],
      ];
      for (const [type, value, ttl] of cases)
        expect(snapshotJson(type, value, ttl)).toEqual(viaModel(type, value, ttl));
    }
  });

  it('takes the model path for streams', () => {
    const stream = {
      entries: [{ id: '1-1', fields: [[Buffer.from('f'), Buffer.from([0xff])]] }],
      lastId: '1-1',
      groups: [],
    };
    expect(snapshotJson('stream', stream)).toEqual(viaModel('stream', stream));
  });
});
