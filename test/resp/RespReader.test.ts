import { describe, expect, it } from 'vitest';
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
