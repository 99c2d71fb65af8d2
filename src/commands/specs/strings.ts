import type { BitfieldOp } from '../../events/ChangeEvent.js';
import { ArgError, type Args, isToken, lower } from '../args.js';
import { type Expiry, expiryFields, isExpiryToken, KEEP_TTL, NO_TTL, readExpiry } from '../expiry.js';
import type { CommandSpec, Emitter } from '../types.js';
import { cmd } from './define.js';

/**
 * SET's options in any order. Conditions (NX/XX, 8.4's IFEQ/IFNE/IFDEQ/IFDNE) and GET are dropped: a master only
 * propagates a SET that took effect, so on the stream every SET is unconditional.
 */
function setOptions(a: Args, ts: number, initial: Expiry): Expiry {
  let x: Expiry = initial;
  while (!a.done) {
    const tok = a.token();
    if (tok === 'nx' || tok === 'xx' || tok === 'get') continue;
    if (tok === 'keepttl') x = KEEP_TTL;
    else if (isExpiryToken(tok)) x = readExpiry(tok, a, ts);
    else if (tok === 'ifeq' || tok === 'ifne' || tok === 'ifdeq' || tok === 'ifdne')
      a.next('condition value');
    else throw new ArgError(`unknown SET option ${tok}`);
  }
  return x;
}

function emitSet(e: Emitter, key: Buffer, value: Buffer, x: Expiry): void {
  const expireAt = x.expireAt;
  // The hot path: the event as one literal (Emitter.put). KEEPTTL leaves expireAt out.
  if (expireAt === undefined) e.emit('set', key, 'string', { value });
  else if (x.approx) {
    const { db } = e.ctx;
    e.put({
      v: 1,
      op: 'set',
      db,
      key,
      type: 'string',
      value,
      expireAt,
      expireApprox: true,
      source: e.source(),
      ts: e.ts,
    });
  } else
    e.put({
      v: 1,
      op: 'set',
      db: e.ctx.db,
      key,
      type: 'string',
      value,
      expireAt,
      source: e.source(),
      ts: e.ts,
    });
}

function negate(n: number | string): number | string {
  if (typeof n === 'number') return n === 0 ? 0 : -n;
  return n.startsWith('-') ? n.slice(1) : `-${n}`;
}

function incr(name: string, sign: 1 | -1, withArg: boolean): CommandSpec {
  return cmd(name, [1, 1, 1], ['incrby'], (a, e) => {
    const key = a.next('key');
    const by = withArg ? a.int64('increment') : 1;
    a.end();
    const delta = sign < 0 ? negate(by) : by;
    e.put({ v: 1, op: 'incrby', db: e.ctx.db, key, type: 'string', delta, source: e.source(), ts: e.ts });
  });
}

/** BITFIELD's GETs change nothing; only SET/INCRBY and the OVERFLOW mode that governs them are kept, in order. */
function bitfieldOps(a: Args): BitfieldOp[] {
  const ops: BitfieldOp[] = [];
  while (!a.done) {
    const tok = a.token();
    if (tok === 'get') {
      a.next('encoding');
      a.next('offset');
    } else if (tok === 'set' || tok === 'incrby') {
      const encoding = lower(a.next('encoding'));
      const offset = a.next('offset').toString('latin1');
      const value = a.int64('value');
      ops.push(
        tok === 'set'
          ? { kind: 'set', encoding, offset, value }
          : { kind: 'incrby', encoding, offset, increment: value },
      );
    } else if (tok === 'overflow') {
      const behavior = lower(a.next('overflow behavior'));
      if (behavior !== 'wrap' && behavior !== 'sat' && behavior !== 'fail')
        throw new ArgError('invalid OVERFLOW');
      ops.push({ kind: 'overflow', behavior });
    } else throw new ArgError(`unknown BITFIELD subcommand ${tok}`);
  }
  return ops;
}

export const stringCommands: CommandSpec[] = [
  cmd(
    'set',
    [1, 1, 1],
    ['set'],
    (a, e) => {
      const key = a.next('key');
      const value = a.next('value');
      emitSet(e, key, value, setOptions(a, e.ts, NO_TTL));
    },
    'SET key value [PXAT ms | KEEPTTL] (7.0+: EX/PX/EXAT rewritten to PXAT, GET dropped)',
  ),
  cmd('setnx', [1, 1, 1], ['set'], (a, e) => {
    const key = a.next('key');
    const value = a.next('value');
    a.end();
    // A propagated SETNX created the key, so it has no TTL.
    emitSet(e, key, value, NO_TTL);
  }),
  cmd(
    'setex',
    [1, 1, 1],
    ['set'],
    (a, e) => {
      const key = a.next('key');
      const x = readExpiry('ex', a, e.ts);
      emitSet(e, key, a.next('value'), x);
      a.end();
    },
    'SET key value PXAT ms',
  ),
  cmd(
    'psetex',
    [1, 1, 1],
    ['set'],
    (a, e) => {
      const key = a.next('key');
      const x = readExpiry('px', a, e.ts);
      emitSet(e, key, a.next('value'), x);
      a.end();
    },
    'SET key value PXAT ms',
  ),
  cmd(
    'getset',
    [1, 1, 1],
    ['set'],
    (a, e) => {
      const key = a.next('key');
      const value = a.next('value');
      a.end();
      emitSet(e, key, value, NO_TTL);
    },
    'SET key value',
  ),
  cmd('mset', [1, -1, 2], ['set'], (a, e) => {
    if (a.left === 0 || a.left % 2 !== 0) throw new ArgError('odd number of MSET arguments');
    while (!a.done) emitSet(e, a.next(), a.next(), NO_TTL);
  }),
  cmd('msetnx', [1, -1, 2], ['set'], (a, e) => {
    if (a.left === 0 || a.left % 2 !== 0) throw new ArgError('odd number of MSETNX arguments');
    while (!a.done) emitSet(e, a.next(), a.next(), NO_TTL);
  }),
  // 8.4: MSETEX numkeys key value [key value ...] [NX|XX] [EX|PX|EXAT|PXAT|KEEPTTL], options in any order.
  cmd('msetex', [0, 0, 0], ['set'], (a, e) => {
    const n = a.int('numkeys');
    if (n <= 0 || n * 2 > a.left) throw new ArgError('invalid numkeys');
    const start = a.i;
    a.i += n * 2;
    const x = setOptions(a, e.ts, NO_TTL);
    for (let k = 0; k < n; k++) emitSet(e, a.argv[start + 2 * k]!, a.argv[start + 2 * k + 1]!, x);
  }),
  cmd('append', [1, 1, 1], ['append'], (a, e) => {
    const key = a.next('key');
    const value = a.next('value');
    a.end();
    e.emit('append', key, 'string', { value });
  }),
  cmd('setrange', [1, 1, 1], ['setrange'], (a, e) => {
    const key = a.next('key');
    const offset = a.int('offset');
    const value = a.next('value');
    a.end();
    e.emit('setrange', key, 'string', { offset, value });
  }),
  incr('incr', 1, false),
  incr('decr', -1, false),
  incr('incrby', 1, true),
  incr('decrby', -1, true),
  cmd(
    'incrbyfloat',
    [1, 1, 1],
    ['incrbyfloat'],
    (a, e) => {
      const key = a.next('key');
      const delta = a.next('increment').toString('latin1');
      a.end();
      // Kept as the decimal text Redis parses with long double precision; a JS number would round it.
      e.emit('incrbyfloat', key, 'string', { delta });
    },
    'SET key <result> KEEPTTL',
  ),
  cmd(
    'getdel',
    [1, 1, 1],
    ['del'],
    (a, e) => {
      const key = a.next('key');
      a.end();
      e.emit('del', key, undefined);
    },
    'DEL key',
  ),
  // 8.4 conditional delete: a propagated DELEX is one whose condition held on the master.
  cmd('delex', [1, 1, 1], ['del'], (a, e) => {
    const key = a.next('key');
    a.next('condition');
    a.next('condition value');
    a.end();
    e.emit('del', key, undefined);
  }),
  cmd(
    'getex',
    [1, 1, 1],
    ['expire', 'persist'],
    (a, e) => {
      const key = a.next('key');
      const tok = a.token();
      if (tok === 'persist') {
        a.end();
        e.emit('persist', key, undefined, { expireAt: null });
        return;
      }
      const x = readExpiry(tok, a, e.ts);
      a.end();
      e.emit('expire', key, undefined, expiryFields(x));
    },
    'PEXPIREAT key ms | PERSIST key',
  ),
  cmd('setbit', [1, 1, 1], ['setbit'], (a, e) => {
    const key = a.next('key');
    const offset = a.int('offset');
    const v = a.next('bit');
    a.end();
    if (!isToken(v, '0') && !isToken(v, '1')) throw new ArgError('bit is not 0 or 1');
    e.emit('setbit', key, 'string', { offset, bit: v[0] === 49 ? 1 : 0 });
  }),
  cmd('bitfield', [1, 1, 1], ['bitfield'], (a, e) => {
    const key = a.next('key');
    e.emit('bitfield', key, 'string', { ops: bitfieldOps(a) });
  }),
  cmd('bitop', [2, -1, 1], ['bitop'], (a, e) => {
    const operation = a.token();
    const key = a.next('destkey');
    const sources = a.rest();
    if (sources.length === 0) throw new ArgError('BITOP needs a source key');
    e.emit('bitop', key, 'string', { operation, sources });
  }),
];
