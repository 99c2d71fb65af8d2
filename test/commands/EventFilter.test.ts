import { describe, expect, it } from 'vitest';
import { EventFilter, parseEventFilterConfig } from '../../src/commands/EventFilter.js';
import { compileGlob, globMatch } from '../../src/commands/glob.js';
import { normalizeCommand } from '../../src/commands/normalize.js';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { argv, ctx, toValidJson } from './helpers.js';

function ev(parts: (string | Buffer | number)[], db = 0): ChangeEvent {
  const [e] = normalizeCommand(argv(...parts), { ...ctx, db });
  toValidJson(e!);
  return e!;
}

const g = (p: string | Buffer, s: string | Buffer) =>
  globMatch(Buffer.isBuffer(p) ? p : Buffer.from(p), Buffer.isBuffer(s) ? s : Buffer.from(s));

describe('Redis glob on bytes', () => {
  it('matches like stringmatchlen', () => {
    expect(g('*', '')).toBe(true);
    expect(g('user:*', 'user:1')).toBe(true);
    expect(g('user:*', 'use')).toBe(false);
    expect(g('h?llo', 'hello')).toBe(true);
    expect(g('h?llo', 'hllo')).toBe(false);
    expect(g('h[ae]llo', 'hallo')).toBe(true);
    expect(g('h[ae]llo', 'hillo')).toBe(false);
    expect(g('h[^e]llo', 'hallo')).toBe(true);
    expect(g('h[^e]llo', 'hello')).toBe(false);
    expect(g('h[a-c]llo', 'hbllo')).toBe(true);
    expect(g('h[c-a]llo', 'hbllo')).toBe(true);
    expect(g('a\\*b', 'a*b')).toBe(true);
    expect(g('a\\*b', 'axb')).toBe(false);
    expect(g('*:*:end', 'a:b:c:end')).toBe(true);
    expect(g('a*b*c', 'abxbxc')).toBe(true);
    expect(g('a*b*c', 'abxbx')).toBe(false);
    expect(g('[\\]]', ']')).toBe(true);
  });

  it('works on non-UTF-8 bytes', () => {
    expect(g(Buffer.from([0x2a, 0xff]), Buffer.from([0x01, 0xff]))).toBe(true);
    expect(g(Buffer.from([0x3f]), Buffer.from([0xfe]))).toBe(true);
  });

  it('compiled literal and prefix fast paths agree with the matcher', () => {
    for (const [p, s] of [
      ['abc', 'abc'],
      ['abc', 'abd'],
      ['ab*', 'abzzz'],
      ['ab*', 'a'],
      ['a?*', 'ab'],
    ] as const)
      expect(compileGlob(p)(Buffer.from(s))).toBe(g(p, s));
  });

  it('does not blow up on pathological patterns', () => {
    const p = `${'a*'.repeat(30)}b`;
    expect(g(p, 'a'.repeat(40))).toBe(false);
  });
});

describe('EventFilter', () => {
  it('passes everything without rules', () => {
    const f = new EventFilter();
    expect(f.isPassThrough).toBe(true);
    expect(f.accepts(ev(['SET', 'k', 'v']))).toBe(true);
  });

  it('includes by db, key glob, type and op (AND across dimensions, OR within one)', () => {
    const f = new EventFilter({
      include: { db: [0, 2], keys: ['user:*', 'cfg'], types: ['string', 'hash'] },
    });
    expect(f.accepts(ev(['SET', 'user:1', 'v']))).toBe(true);
    expect(f.accepts(ev(['SET', 'cfg', 'v'], 2))).toBe(true);
    expect(f.accepts(ev(['SET', 'user:1', 'v'], 1))).toBe(false);
    expect(f.accepts(ev(['SET', 'order:1', 'v']))).toBe(false);
    expect(f.accepts(ev(['RPUSH', 'user:1', 'v']))).toBe(false);
    expect(f.accepts(ev(['HSET', 'user:1', 'f', 'v']))).toBe(true);
    const ops = new EventFilter({ include: { ops: ['del', 'expire'] } });
    expect(ops.accepts(ev(['DEL', 'x']))).toBe(true);
    expect(ops.accepts(ev(['SET', 'x', 'v']))).toBe(false);
  });

  it('excludes by rule, and a list of rules is ORed', () => {
    const f = new EventFilter({ exclude: [{ keys: ['tmp:*'] }, { db: [9] }, { ops: ['publish'] }] });
    expect(f.accepts(ev(['SET', 'tmp:1', 'v']))).toBe(false);
    expect(f.accepts(ev(['SET', 'k', 'v'], 9))).toBe(false);
    expect(f.accepts(ev(['PUBLISH', 'ch', 'm']))).toBe(false);
    expect(f.accepts(ev(['SET', 'k', 'v']))).toBe(true);
    const both = new EventFilter({ exclude: { db: [1], keys: ['tmp:*'] } });
    expect(both.accepts(ev(['SET', 'tmp:1', 'v'], 0))).toBe(true);
    expect(both.accepts(ev(['SET', 'tmp:1', 'v'], 1))).toBe(false);
  });

  it('never selects or drops an event on a dimension it does not have', () => {
    const inc = new EventFilter({ include: { keys: ['user:*'], types: ['hash'] } });
    expect(inc.accepts(ev(['FLUSHDB']))).toBe(true);
    expect(inc.accepts(ev(['DEL', 'user:1']))).toBe(true);
    expect(inc.accepts(ev(['DEL', 'other']))).toBe(false);
    const exc = new EventFilter({ exclude: { keys: ['*'] } });
    expect(exc.accepts(ev(['FLUSHALL']))).toBe(true);
    expect(exc.accepts(ev(['foo.bar', 'x']))).toBe(true);
    expect(exc.accepts(ev(['SET', 'k', 'v']))).toBe(false);
    const types = new EventFilter({ exclude: { types: ['string'] } });
    expect(types.accepts(ev(['DEL', 'k']))).toBe(true);
  });

  it('keeps moves that touch a selected key or db on either side', () => {
    const f = new EventFilter({ include: { keys: ['user:*'], db: [0] } });
    expect(f.accepts(ev(['RENAME', 'tmp', 'user:1']))).toBe(true);
    expect(f.accepts(ev(['RENAME', 'user:1', 'tmp']))).toBe(true);
    expect(f.accepts(ev(['RENAME', 'a', 'b']))).toBe(false);
    expect(f.accepts(ev(['MOVE', 'user:1', 0], 3))).toBe(true);
    expect(f.accepts(ev(['SWAPDB', 3, 0], 5))).toBe(true);
    expect(new EventFilter({ include: { db: [4] } }).accepts(ev(['FLUSHALL']))).toBe(true);
    const exc = new EventFilter({ exclude: { keys: ['tmp:*'] } });
    expect(exc.accepts(ev(['RENAME', 'tmp:1', 'user:1']))).toBe(true);
    expect(exc.accepts(ev(['RENAME', 'tmp:1', 'tmp:2']))).toBe(false);
    expect(new EventFilter({ exclude: { db: [0] } }).accepts(ev(['SWAPDB', 0, 1]))).toBe(true);
  });

  it('matches non-UTF-8 keys', () => {
    const f = new EventFilter({ include: { keys: ['bin:*'] } });
    expect(f.accepts(ev(['SET', Buffer.from([0x62, 0x69, 0x6e, 0x3a, 0xff]), 'v']))).toBe(true);
  });

  it('lets control markers through an include unless excluded by op', () => {
    const marker = { ...ev(['SET', 'k', 'v']), op: 'snapshot-begin' } as ChangeEvent;
    delete marker.key;
    expect(new EventFilter({ include: { ops: ['set'] } }).accepts(marker)).toBe(true);
    expect(new EventFilter({ exclude: { ops: ['snapshot-begin'] } }).accepts(marker)).toBe(false);
  });

  it('apply() filters a batch and keeps order', () => {
    const f = new EventFilter({ include: { keys: ['a*'] } });
    const events = normalizeCommand(argv('MSET', 'a1', '1', 'b', '2', 'a2', '3'), ctx);
    events.forEach(toValidJson);
    const out = f.apply(events);
    expect(out.map((e) => e.key!.toString())).toEqual(['a1', 'a2']);
  });

  it('validates its config section', () => {
    expect(parseEventFilterConfig(undefined)).toEqual({});
    expect(
      parseEventFilterConfig({ include: { db: [0], keys: ['a*'] }, exclude: [{ ops: ['del'] }] }),
    ).toEqual({
      include: { db: [0], keys: ['a*'] },
      exclude: [{ ops: ['del'] }],
    });
    expect(() => parseEventFilterConfig({ inclde: {} })).toThrow(/filter.inclde/);
    expect(() => parseEventFilterConfig({ include: { db: ['0'] } })).toThrow(/filter.include.db/);
    expect(() => parseEventFilterConfig({ include: { key: ['a'] } })).toThrow(/filter.include.key /);
    expect(() => parseEventFilterConfig({ exclude: [{ ops: 'del' }] })).toThrow(/filter.exclude\[0\].ops/);
  });
});
