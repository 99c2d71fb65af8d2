import { describe, expect, it } from 'vitest';
import { BIG_COMMAND_BYTES, CommandFramer } from '../../src/resp/CommandFramer.js';
import { RespProtocolError } from '../../src/resp/RespProtocolError.js';
import { RespReader } from '../../src/resp/RespReader.js';
import { respCommand as encode } from './encode.js';

/** Issue 16: a command of BIG_COMMAND_BYTES or more is handed over in parts as it arrives, never held back whole. */
describe('CommandFramer: big commands in parts', () => {
  const big = Buffer.alloc(BIG_COMMAND_BYTES * 3 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const commands = [
    encode('SELECT', '0'),
    encode('SET', 'big', big),
    encode('set', 'k', 'v'),
    encode('RPUSH', 'l', 'a', big, 'b'),
    encode('replconf', 'getack', '*'),
  ];
  const stream = Buffer.concat(commands);
  const ends: number[] = [];
  let o = 100;
  for (const c of commands) {
    o += c.length;
    ends.push(o);
  }

  for (const size of [1000, 65_536, 300_001, BIG_COMMAND_BYTES + 1]) {
    it(`chunks of ${size}: parts and commands are the stream, in order, each command ending at its offset`, () => {
      const got: Buffer[] = [];
      const commandEnds: number[] = [];
      let parts = 0;
      let held = 0;
      const args: Buffer[][] = [];
      const reader = new RespReader({ lazy: (a) => args.push(a.toArray().map((b) => Buffer.from(b))) }, 100);
      const f = new CommandFramer(
        {
          commands: (bytes, end) => {
            got.push(Buffer.from(bytes));
            commandEnds.push(end);
            reader.feed(Buffer.from(bytes));
          },
          commandPart: (bytes) => {
            got.push(Buffer.from(bytes));
            parts++;
            reader.feed(Buffer.from(bytes));
          },
          getAck: () => {},
        },
        100,
      );
      for (let i = 0; i < stream.length; i += size) {
        f.feed(stream.subarray(i, i + size));
        held = Math.max(held, f.pendingBytes);
      }
      expect(Buffer.compare(Buffer.concat(got), stream)).toBe(0);
      // Never more than a big command's first MB (plus one chunk) is held back.
      expect(held).toBeLessThan(BIG_COMMAND_BYTES + size);
      expect(parts).toBeGreaterThan(1);
      for (const e of [ends[1], ends[3], ends[4]]) expect(commandEnds).toContain(e);
      expect(f.offset).toBe(ends[4]);
      expect(args.map((a) => a[0]!.toString())).toEqual(['SELECT', 'SET', 'set', 'RPUSH', 'replconf']);
      expect(Buffer.compare(args[1]![2]!, big)).toBe(0);
      expect(Buffer.compare(args[3]![3]!, big)).toBe(0);
    });
  }

  it('checks the CRLF after a big bulk that ends a chunk', () => {
    const bad = Buffer.from(encode('SET', 'big', big));
    bad[bad.length - 2] = 0x41;
    const f = new CommandFramer({ commands: () => {}, commandPart: () => {}, getAck: () => {} }, 0);
    expect(() => {
      for (let i = 0; i < bad.length; i += 65_536) f.feed(bad.subarray(i, i + 65_536));
    }).toThrow(RespProtocolError);
  });
});
