import { describe, expect, it } from 'vitest';
import { normalizeCommand } from '../../src/commands/normalize.js';
import { toJsonValue } from '../../src/events/EventEncoder.js';
import { argIs, argLatin1, type CommandArgs } from '../../src/resp/CommandArgs.js';
import { RespProtocolError } from '../../src/resp/RespProtocolError.js';
import { RespReader } from '../../src/resp/RespReader.js';
import { respCommand as encode } from './encode.js';

function collect(chunks: Buffer[], start = 0) {
  const out: { args: string[]; end: number }[] = [];
  const r = new RespReader(
    (args, end) => out.push({ args: args.map((a) => a.toString('latin1')), end }),
    start,
  );
  for (const c of chunks) r.feed(c);
  return { out, reader: r };
}

describe('RespReader', () => {
  const binary = Buffer.from([0, 255, 13, 10, 36, 42, 0x80]);
  const stream = Buffer.concat([
    encode('SELECT', '0'),
    encode('set', 'k', 'v'),
    Buffer.from('\n'),
    encode('SET', binary, Buffer.alloc(70_000, 'x')),
    encode('PING'),
    Buffer.from('PING\r\n'),
    encode('REPLCONF', 'GETACK', '*'),
  ]);
  const expectedEnds: number[] = [];
  {
    let o = 1000;
    for (const len of [
      encode('SELECT', '0').length,
      encode('set', 'k', 'v').length + 1,
      encode('SET', binary, Buffer.alloc(70_000, 'x')).length,
      encode('PING').length,
      6,
      encode('REPLCONF', 'GETACK', '*').length,
    ]) {
      o += len;
      expectedEnds.push(o);
    }
    // The keep-alive newline belongs to no command; it is counted before the next one.
    expectedEnds[1]! -= 1;
  }

  it('yields every command with the offset just past it, whatever the chunking', () => {
    for (const size of [1, 2, 3, 7, 64, 1024, 65536, stream.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      const { out, reader } = collect(chunks, 1000);
      expect(out.map((c) => c.args[0])).toEqual(['SELECT', 'set', 'SET', 'PING', 'PING', 'REPLCONF']);
      expect(out.map((c) => c.end)).toEqual(expectedEnds);
      expect(Buffer.from(out[2]!.args[1]!, 'latin1')).toEqual(binary);
      expect(out[2]!.args[2]!.length).toBe(70_000);
      expect(reader.offset).toBe(1000 + stream.length);
      expect(reader.atBoundary).toBe(true);
    }
  });

  it('reports a partial command as not at a boundary', () => {
    const whole = encode('set', 'a', 'b');
    const { out, reader } = collect([whole.subarray(0, 10)]);
    expect(out).toEqual([]);
    expect(reader.atBoundary).toBe(false);
    expect(reader.offset).toBe(10);
  });

  it('slices arguments from the chunk without copying when they fit', () => {
    const chunk = encode('set', 'key', 'value');
    let seen: Buffer[] = [];
    new RespReader((args) => {
      seen = args;
    }).feed(chunk);
    expect(seen[2]!.buffer).toBe(chunk.buffer);
  });

  it('rejects what a master never sends, naming the offset', () => {
    const bad = [
      { input: Buffer.from('*2\r\n$3\r\nset\r\n:1\r\n'), at: 13 },
      { input: Buffer.from('$3\r\nfoo\r\n'), at: 0 },
      { input: Buffer.from('*x\r\n'), at: 0 },
      { input: Buffer.from('*1\r\n$3\r\nfooXY'), at: 11 },
    ];
    for (const { input, at } of bad) {
      let err: unknown;
      try {
        new RespReader(() => {}, 0).feed(input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RespProtocolError);
      expect((err as RespProtocolError).offset).toBe(at);
      expect((err as Error).message).toMatch(/^RespProtocolError at offset \d+: /);
    }
  });
});

describe('RespReader with a lazy handler (arguments as offsets)', () => {
  const binary = Buffer.from([0, 255, 13, 10, 36, 42, 0x80]);
  const commands: Buffer[][] = [
    [Buffer.from('SELECT'), Buffer.from('3')],
    [Buffer.from('set'), Buffer.from('k'), Buffer.from('v')],
    [Buffer.from('ZADD'), binary, Buffer.from('-1.5e3'), Buffer.alloc(70_000, 'x')],
    [Buffer.from('HSET'), Buffer.from('h'), Buffer.alloc(0), Buffer.from('é')],
    [Buffer.from('PING')],
  ];
  const stream = Buffer.concat([
    ...commands.map((c) => encode(...c)),
    Buffer.from('\n'),
    Buffer.from('PING  x\r\n'),
  ]);
  const expected = [...commands, [Buffer.from('PING'), Buffer.from('x')]];

  it('gives the same arguments as the Buffer form, read in place or as views, at every chunk size', () => {
    for (const size of [1, 2, 3, 5, 7, 64, 1024, 65536, stream.length]) {
      const seen: Buffer[][] = [];
      const inPlace: string[][] = [];
      const tokens: boolean[] = [];
      const ends: number[] = [];
      let view: CommandArgs | undefined;
      const r = new RespReader(
        {
          lazy: (args, end) => {
            // One view for the whole stream: it is refilled per command, not allocated.
            if (view !== undefined) expect(args).toBe(view);
            view = args;
            const own: string[] = [];
            for (let i = 0; i < args.length; i++)
              own.push(args.bufferOf(i).toString('latin1', args.start(i), args.end(i)));
            inPlace.push(own);
            tokens.push(argIs(args, 0, 'ping'));
            expect(argLatin1(args, 0)).toBe(own[0]);
            // A Buffer is made on request, once per argument and command.
            expect(args.get(1)).toBe(args.get(1));
            expect(args.get(args.length)).toBeUndefined();
            seen.push(args.toArray());
            ends.push(end);
          },
        },
        500,
      );
      for (let i = 0; i < stream.length; i += size) r.feed(stream.subarray(i, i + size));
      expect(seen.map((c) => c.map((a) => a.toString('hex')))).toEqual(
        expected.map((c) => c.map((a) => a.toString('hex'))),
      );
      expect(inPlace).toEqual(expected.map((c) => c.map((a) => a.toString('latin1'))));
      expect(tokens).toEqual([false, false, false, false, true, true]);
      expect(ends[ends.length - 1]).toBe(500 + stream.length);
      expect(r.atBoundary).toBe(true);
    }
  });

  it('keeps arguments it handed out valid after the view moved on to the next command', () => {
    const kept: Buffer[] = [];
    const r = new RespReader({ lazy: (args) => kept.push(args.get(1)!) });
    const chunk = Buffer.concat([encode('set', 'first', 'v'), encode('set', 'second', 'v')]);
    r.feed(chunk);
    expect(kept.map((b) => b.toString())).toEqual(['first', 'second']);
    // Views of the chunk, not copies.
    expect(kept[0]!.buffer).toBe(chunk.buffer);
  });

  it('normalizes to the same events as the Buffer form', () => {
    const ctx = { db: 0, replid: 'r'.repeat(40), offset: 9, ts: 1 };
    const cmds = [
      ['SET', 'k', 'v', 'PXAT', '1700000000000'],
      ['HSET', 'h', 'a', '1', 'b', '2'],
      ['ZADD', 'z', 'GT', 'CH', '1.5', 'm', '+inf', 'n'],
      ['LPUSH', 'l', 'a', 'b'],
      ['INCRBY', 'c', '-99999999999999999999'],
      ['INCRBY', 'c', '123456789012345678'],
      ['PEXPIREAT', 'k', 'soon'],
      ['XGROUP', 'CREATE', 's', 'g', '$', 'MKSTREAM'],
      ['MSETEX', '2', 'a', '1', 'b', '2', 'PXAT', '1700000000000'],
      ['SORT', 'src', 'LIMIT', '0', '5', 'STORE', 'dst'],
      ['NOPE', 'x'],
    ];
    for (const c of cmds) {
      const argv = c.map((a) => Buffer.from(a));
      let lazy: unknown;
      new RespReader({ lazy: (args) => (lazy = normalizeCommand(args, ctx)) }).feed(encode(...argv));
      expect(JSON.stringify(toJsonValue(lazy))).toBe(
        JSON.stringify(toJsonValue(normalizeCommand(argv, ctx))),
      );
    }
  });
});
