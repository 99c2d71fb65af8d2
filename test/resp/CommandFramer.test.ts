import { describe, expect, it } from 'vitest';
import { CommandFramer } from '../../src/resp/CommandFramer.js';
import { RespProtocolError } from '../../src/resp/RespProtocolError.js';
import { respCommand as encode } from './encode.js';

/** Feeds `stream` in chunks of `size`; returns what the framer handed over, as copies. */
function frame(stream: Buffer, size: number, start = 0) {
  const pieces: { bytes: Buffer; end: number }[] = [];
  const acks: number[] = [];
  const f = new CommandFramer(
    {
      commands: (bytes, end) => pieces.push({ bytes: Buffer.from(bytes), end }),
      getAck: (end) => acks.push(end),
    },
    start,
  );
  for (let i = 0; i < stream.length; i += size) f.feed(stream.subarray(i, i + size));
  return { pieces, acks, framer: f };
}

describe('CommandFramer', () => {
  const commands = [
    encode('SELECT', '0'),
    encode('set', 'k', 'v'),
    Buffer.from('\n'),
    encode('SET', Buffer.from([0, 255, 13, 10, 36, 42]), Buffer.alloc(70_000, 'x')),
    Buffer.from('*0\r\n'),
    Buffer.from('PING\r\n'),
    encode('replconf', 'getack', '*'),
    encode('DEL', 'a'),
  ];
  const stream = Buffer.concat(commands);
  const boundaries = new Set<number>();
  let o = 500;
  for (const c of commands) {
    o += c.length;
    boundaries.add(o);
  }
  const getAckEnd = 500 + Buffer.concat(commands.slice(0, 7)).length;

  it('hands over every byte, only in whole commands, at every chunk size', () => {
    for (let size = 1; size <= 300; size++) check(size);
    for (const size of [1024, 4096, 65_536, stream.length]) check(size);
    function check(size: number) {
      const { pieces, acks, framer } = frame(stream, size, 500);
      expect(Buffer.concat(pieces.map((p) => p.bytes)).equals(stream)).toBe(true);
      let at = 500;
      for (const p of pieces) {
        at += p.bytes.length;
        expect(p.end).toBe(at);
        expect(boundaries.has(p.end)).toBe(true);
      }
      expect(acks).toEqual([getAckEnd]);
      // The GETACK's own piece ends exactly at it: nothing after it is handed over before the ACK.
      expect(pieces.some((p) => p.end === getAckEnd)).toBe(true);
      expect(framer.offset).toBe(500 + stream.length);
      expect(framer.pendingBytes).toBe(0);
    }
  });

  it('holds back an incomplete command and reports where the last complete one ends', () => {
    const cut = stream.length - 3;
    const { pieces, framer } = frame(stream.subarray(0, cut), 1000, 0);
    const last = commands[commands.length - 1]!;
    expect(framer.offset).toBe(stream.length - last.length);
    expect(framer.pendingBytes).toBe(last.length - 3);
    expect(
      Buffer.concat(pieces.map((p) => p.bytes)).equals(stream.subarray(0, stream.length - last.length)),
    ).toBe(true);
  });

  it('rejects what no master sends, naming the offset', () => {
    const bad = [
      Buffer.from('$3\r\nfoo\r\n'),
      Buffer.from('*1\r\n:3\r\n'),
      Buffer.from('*1\r\n$3\r\nfooXY'),
      Buffer.from('*x\r\n'),
      Buffer.from('*1\r\n$99999999999999\r\n'),
    ];
    for (const b of bad) {
      for (const size of [1, 2, b.length]) {
        expect(() => frame(Buffer.concat([encode('PING'), b]), size)).toThrow(RespProtocolError);
      }
    }
    expect(() => frame(Buffer.alloc(70 * 1024, 'a'), 4096)).toThrow(/64 KB/);
  });
});
