import { ArgError, type Args, isToken, pairs } from '../args.js';
import { at, type Expiry, isExpiryToken, KEEP_TTL, NO_TTL, readExpiry } from '../expiry.js';
import type { CommandSpec, Emitter } from '../types.js';
import { cmd } from './define.js';

/**
 * Hash field expiry (7.4+). A plain HSET discards the TTL of the fields it writes (hashTypeSet without
 * HASH_SET_KEEP_TTL), so `hset` events carry `fieldExpireAt: null`; HSETEX can set one or keep it (KEEPTTL: absent).
 */
function fieldExpiry(x: Expiry): { fieldExpireAt: number | null | undefined; expireApprox?: true } {
  return x.approx ? { fieldExpireAt: x.expireAt, expireApprox: true } : { fieldExpireAt: x.expireAt };
}

/** The `FIELDS numfields field [field ...]` block of the 7.4+/8.0 hash commands. */
function fieldsBlock(a: Args): Buffer[] {
  if (!a.eat('fields')) throw new ArgError('missing FIELDS');
  const n = a.int('numfields');
  if (n <= 0 || n !== a.left) throw new ArgError('numfields does not match the arguments');
  return a.rest();
}

function hset(name: string): CommandSpec {
  return cmd(name, [1, 1, 1], ['hset'], (a, e) => {
    const key = a.next('key');
    if (a.left === 0) throw new ArgError('missing field');
    // What fieldExpiry(NO_TTL) gives, as one literal (HSET is on the hot path: Emitter.put).
    const fields = pairs(a);
    e.put({
      v: 1,
      op: 'hset',
      db: e.ctx.db,
      key,
      type: 'hash',
      fields,
      fieldExpireAt: null,
      source: e.source(),
      ts: e.ts,
    });
  });
}

/**
 * HEXPIRE family: 7.4+ masters propagate HPEXPIREAT with the absolute time, listing only the fields whose TTL was set,
 * and keep the NX/XX/GT/LT condition, which the replica evaluates per field, so the condition stays in the event.
 * A time already past is propagated as one HDEL per field instead (verified on 8.0.2).
 */
function hexpire(name: string, unitMs: number, relative: boolean): CommandSpec {
  return cmd(
    name,
    [1, 1, 1],
    ['hexpire'],
    (a, e) => {
      const key = a.next('key');
      const x = at(a.int('time') * unitMs, relative, e.ts);
      let condition: 'nx' | 'xx' | 'gt' | 'lt' | undefined;
      if (!isToken(a.peek(), 'fields')) {
        const c = a.token();
        if (c !== 'nx' && c !== 'xx' && c !== 'gt' && c !== 'lt')
          throw new ArgError(`unknown condition ${c}`);
        condition = c;
      }
      const fields = fieldsBlock(a);
      e.emit('hexpire', key, 'hash', {
        fields,
        expireAt: x.expireAt,
        expireApprox: x.approx ? true : undefined,
        condition,
      });
    },
    name === 'hpexpireat'
      ? 'HDEL key field, per field, when the time is past'
      : 'HPEXPIREAT key ms [NX|XX|GT|LT] FIELDS n field ... (the fields set), or HDEL per field when the time is past',
  );
}

function hsetex(a: Args, e: Emitter): void {
  const key = a.next('key');
  let x: Expiry = NO_TTL;
  while (!isToken(a.peek(), 'fields')) {
    const t = a.token();
    if (t === 'fnx' || t === 'fxx') continue;
    if (t === 'keepttl') x = KEEP_TTL;
    else if (isExpiryToken(t)) x = readExpiry(t, a, e.ts);
    else throw new ArgError(`unknown HSETEX option ${t}`);
  }
  a.next();
  const n = a.int('numfields');
  if (n <= 0 || n * 2 !== a.left) throw new ArgError('numfields does not match the arguments');
  e.emit('hset', key, 'hash', { fields: pairs(a), ...fieldExpiry(x) });
}

/**
 * HGETEX never reaches the stream on 8.0 (HPEXPIREAT naming every field, HPERSIST, or HDEL per field for a past time,
 * verified on 8.0.2); the verbatim form maps to hexpire/hpersist.
 */
function hgetex(a: Args, e: Emitter): void {
  const key = a.next('key');
  if (isToken(a.peek(), 'fields')) throw new ArgError('HGETEX without an option changes nothing');
  const t = a.token();
  if (t === 'persist') {
    e.emit('hpersist', key, 'hash', { fields: fieldsBlock(a) });
    return;
  }
  const x = readExpiry(t, a, e.ts);
  e.emit('hexpire', key, 'hash', {
    fields: fieldsBlock(a),
    expireAt: x.expireAt,
    expireApprox: x.approx ? true : undefined,
  });
}

export const hashCommands: CommandSpec[] = [
  hset('hset'),
  hset('hmset'),
  hset('hsetnx'),
  cmd(
    'hsetex',
    [1, 1, 1],
    ['hset'],
    hsetex,
    'HSETEX key [FNX|FXX] PXAT ms|KEEPTTL FIELDS n field value ... (EX/PX/EXAT rewritten), or HDEL for a past time',
  ),
  cmd('hincrby', [1, 1, 1], ['hincrby'], (a, e) => {
    const key = a.next('key');
    const field = a.next('field');
    const delta = a.int64('increment');
    a.end();
    e.emit('hincrby', key, 'hash', { field, delta });
  }),
  cmd(
    'hincrbyfloat',
    [1, 1, 1],
    ['hincrbyfloat'],
    (a, e) => {
      const key = a.next('key');
      const field = a.next('field');
      const delta = a.next('increment').toString('latin1');
      a.end();
      e.emit('hincrbyfloat', key, 'hash', { field, delta });
    },
    // The master keeps the field's TTL (7.4+), the HSET drops it on replicas (docs/events.md).
    'HSET key field <result>',
  ),
  cmd('hdel', [1, 1, 1], ['hdel'], (a, e) => {
    const key = a.next('key');
    const fields = a.rest();
    if (fields.length === 0) throw new ArgError('missing field');
    e.emit('hdel', key, 'hash', { fields });
  }),
  cmd(
    'hgetdel',
    [1, 1, 1],
    ['hdel'],
    (a, e) => {
      const key = a.next('key');
      e.emit('hdel', key, 'hash', { fields: fieldsBlock(a) });
    },
    'HDEL key field ...',
  ),
  cmd('hgetex', [1, 1, 1], ['hexpire', 'hpersist'], hgetex, 'HPEXPIREAT | HPERSIST | HDEL'),
  hexpire('hexpire', 1000, true),
  hexpire('hpexpire', 1, true),
  hexpire('hexpireat', 1000, false),
  hexpire('hpexpireat', 1, false),
  cmd('hpersist', [1, 1, 1], ['hpersist'], (a, e) => {
    const key = a.next('key');
    e.emit('hpersist', key, 'hash', { fields: fieldsBlock(a) });
  }),
];
