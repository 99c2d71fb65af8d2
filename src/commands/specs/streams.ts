import type {
  CommandOp,
  StreamPolicy,
  StreamTrimOptions,
  XclaimOptions,
  XsetidOptions,
} from '../../events/ChangeEvent.js';
import { ArgError, type Args, isToken, lower } from '../args.js';
import type { CommandSpec, Emitter, PayloadOf } from '../types.js';
import { cmd } from './define.js';

/** `ms[-seq]`, where seq may be `*` (XADD with a partial id) — checked byte-wise to keep regexes off the hot path. */
function isStreamId(b: Buffer): boolean {
  let i = 0;
  let digits = 0;
  while (i < b.length && b[i]! >= 48 && b[i]! <= 57) {
    i++;
    digits++;
  }
  if (digits === 0) return false;
  if (i === b.length) return true;
  if (b[i] !== 45) return false;
  i++;
  if (i === b.length - 1 && b[i] === 42) return true;
  const start = i;
  while (i < b.length && b[i]! >= 48 && b[i]! <= 57) i++;
  return i === b.length && i > start;
}

function id(a: Args, what = 'id'): string {
  const b = a.next(what);
  if (!isStreamId(b) && !isToken(b, '*') && !isToken(b, '$') && !isToken(b, '-') && !isToken(b, '+'))
    throw new ArgError(`invalid stream ${what}`);
  return b.toString('latin1');
}

function ids(a: Args): string[] {
  const out: string[] = [];
  while (!a.done && isStreamId(a.peek()!)) out.push(a.next().toString('latin1'));
  if (out.length === 0) throw new ArgError('missing id');
  return out;
}

/**
 * Options shared by XADD and XTRIM (streamParseAddOrTrimArgsOrReply): trimming, 6.2's NOMKSTREAM/LIMIT and 8.2's
 * KEEPREF/DELREF/ACKED reference policy. 7.0+ masters propagate approximate trims rewritten to what was actually
 * trimmed, so `exact` tells the consumer whether the threshold can be applied literally.
 */
function trimOptions(a: Args, isAdd: boolean): StreamTrimOptions {
  const out: StreamTrimOptions = {};
  while (!a.done) {
    const b = a.peek()!;
    if (isAdd && (isStreamId(b) || isToken(b, '*'))) break;
    const t = a.token();
    if (t === 'maxlen' || t === 'minid') {
      let exact = true;
      if (a.eat('~')) exact = false;
      else a.eat('=');
      const threshold = a.next('threshold').toString('latin1');
      out.trim = {
        strategy: t,
        exact,
        threshold,
        ...(out.trim?.limit !== undefined ? { limit: out.trim.limit } : {}),
      };
    } else if (t === 'limit') {
      const limit = a.int('limit');
      if (out.trim) out.trim.limit = limit;
      else throw new ArgError('LIMIT without MAXLEN/MINID');
    } else if (t === 'nomkstream' && isAdd) out.nomkstream = true;
    else if (t === 'keepref' || t === 'delref' || t === 'acked') out.policy = t;
    else throw new ArgError(`unknown option ${t}`);
  }
  return out;
}

function policyIds(a: Args): { policy?: StreamPolicy; ids: string[] } {
  let policy: StreamPolicy | undefined;
  if (!isToken(a.peek(), 'ids')) {
    const p = a.token();
    if (p !== 'keepref' && p !== 'delref' && p !== 'acked') throw new ArgError('invalid policy');
    policy = p;
  }
  if (!a.eat('ids')) throw new ArgError('missing IDS');
  const n = a.int('numids');
  const list = ids(a);
  a.end();
  if (list.length !== n) throw new ArgError('numids does not match the ids');
  return { policy, ids: list };
}

function xadd(a: Args, e: Emitter): void {
  const key = a.next('key');
  const opts = trimOptions(a, true);
  const entryId = id(a);
  if (a.left === 0 || a.left % 2 !== 0) throw new ArgError('XADD needs field/value pairs');
  const fields: [Buffer, Buffer][] = [];
  while (!a.done) fields.push([a.next(), a.next()]);
  e.emit('xadd', key, 'stream', { id: entryId, fields, ...opts });
}

type XgroupSub = 'create' | 'setid' | 'destroy' | 'createconsumer' | 'delconsumer';

function xgroup(
  sub: XgroupSub,
  parse: (a: Args, e: Emitter, key: Buffer, group: Buffer) => void,
): CommandSpec {
  return cmd(`xgroup|${sub}`, [2, 2, 1], [`xgroup-${sub}` satisfies CommandOp], (a, e) => {
    const key = a.next('key');
    const group = a.next('group');
    parse(a, e, key, group);
  });
}

function entriesRead(a: Args): number | undefined {
  return a.eat('entriesread') ? a.int('entries-read') : undefined;
}

function xclaim(a: Args, e: Emitter): void {
  const key = a.next('key');
  const group = a.next('group');
  const consumer = a.next('consumer');
  const minIdle = a.int('min-idle-time');
  const list = ids(a);
  const p: PayloadOf<'xclaim'> & XclaimOptions = { group, consumer, minIdle, ids: list };
  while (!a.done) {
    const t = a.token();
    if (t === 'idle') p.idle = a.int('idle');
    else if (t === 'time') p.time = a.int('time');
    else if (t === 'retrycount') p.retryCount = a.int('retrycount');
    else if (t === 'force') p.force = true;
    else if (t === 'justid') p.justId = true;
    else if (t === 'lastid') p.lastId = id(a, 'lastid');
    else throw new ArgError(`unknown XCLAIM option ${t}`);
  }
  e.emit('xclaim', key, 'stream', p);
}

export const streamCommands: CommandSpec[] = [
  cmd(
    'xadd',
    [1, 1, 1],
    ['xadd'],
    xadd,
    'XADD key [trim rewritten to the exact result] <generated id> field value ...',
  ),
  cmd('xtrim', [1, 1, 1], ['xtrim'], (a, e) => {
    const key = a.next('key');
    const opts = trimOptions(a, false);
    if (!opts.trim) throw new ArgError('XTRIM needs MAXLEN or MINID');
    e.emit('xtrim', key, 'stream', opts);
  }),
  cmd('xdel', [1, 1, 1], ['xdel'], (a, e) => {
    const key = a.next('key');
    const list = ids(a);
    a.end();
    e.emit('xdel', key, 'stream', { ids: list });
  }),
  // 8.2: XDELEX key [KEEPREF|DELREF|ACKED] IDS n id ...; with ACKED only entries every group acknowledged go.
  cmd('xdelex', [1, 1, 1], ['xdel'], (a, e) => {
    const key = a.next('key');
    e.emit('xdel', key, 'stream', policyIds(a));
  }),
  cmd('xack', [1, 1, 1], ['xack'], (a, e) => {
    const key = a.next('key');
    const group = a.next('group');
    const list = ids(a);
    a.end();
    e.emit('xack', key, 'stream', { group, ids: list });
  }),
  // 8.2: XACKDEL key group [KEEPREF|DELREF|ACKED] IDS n id ...
  cmd('xackdel', [1, 1, 1], ['xackdel'], (a, e) => {
    const key = a.next('key');
    const group = a.next('group');
    e.emit('xackdel', key, 'stream', { group, ...policyIds(a) });
  }),
  xgroup('create', (a, e, key, group) => {
    const at = id(a);
    let mkstream = false;
    let read: number | undefined;
    while (!a.done) {
      const t = a.token();
      if (t === 'mkstream') mkstream = true;
      else if (t === 'entriesread') read = a.int('entries-read');
      else throw new ArgError(`unknown XGROUP CREATE option ${t}`);
    }
    e.emit('xgroup-create', key, 'stream', { group, id: at, mkstream, entriesRead: read });
  }),
  xgroup('setid', (a, e, key, group) => {
    const at = id(a);
    const read = entriesRead(a);
    a.end();
    e.emit('xgroup-setid', key, 'stream', { group, id: at, entriesRead: read });
  }),
  xgroup('destroy', (a, e, key, group) => {
    a.end();
    e.emit('xgroup-destroy', key, 'stream', { group });
  }),
  xgroup('createconsumer', (a, e, key, group) => {
    const consumer = a.next('consumer');
    a.end();
    e.emit('xgroup-createconsumer', key, 'stream', { group, consumer });
  }),
  xgroup('delconsumer', (a, e, key, group) => {
    const consumer = a.next('consumer');
    a.end();
    e.emit('xgroup-delconsumer', key, 'stream', { group, consumer });
  }),
  cmd('xclaim', [1, 1, 1], ['xclaim'], xclaim),
  cmd(
    'xautoclaim',
    [1, 1, 1],
    ['xautoclaim'],
    (a, e) => {
      const key = a.next('key');
      const group = a.next('group');
      const consumer = a.next('consumer');
      const minIdle = a.int('min-idle-time');
      const start = id(a, 'start');
      const p: PayloadOf<'xautoclaim'> = { group, consumer, minIdle, start };
      while (!a.done) {
        const t = lower(a.next());
        if (t === 'count') p.count = a.int('count');
        else if (t === 'justid') p.justId = true;
        else throw new ArgError(`unknown XAUTOCLAIM option ${t}`);
      }
      e.emit('xautoclaim', key, 'stream', p);
    },
    'XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID id, one per claimed entry',
  ),
  cmd('xsetid', [1, 1, 1], ['xsetid'], (a, e) => {
    const key = a.next('key');
    const lastId = id(a, 'last-id');
    const p: PayloadOf<'xsetid'> & XsetidOptions = { id: lastId };
    while (!a.done) {
      const t = a.token();
      if (t === 'entriesadded') p.entriesAdded = a.int64('entries-added');
      else if (t === 'maxdeletedid') p.maxDeletedId = id(a, 'max-deleted-id');
      else throw new ArgError(`unknown XSETID option ${t}`);
    }
    e.emit('xsetid', key, 'stream', p);
  }),
];
