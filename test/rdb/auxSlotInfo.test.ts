import { describe, expect, it } from 'vitest';
import { RdbParser } from '../../src/rdb/RdbParser.js';

/** An AUX field as RDB writes it: opcode 250, then name and value as 6-bit-length strings. */
function aux(name: string, value: string): Buffer {
  return Buffer.concat([
    Buffer.from([250, name.length]),
    Buffer.from(name, 'latin1'),
    Buffer.from([value.length]),
    Buffer.from(value, 'latin1'),
  ]);
}

describe("Valkey's slot-info AUX field", () => {
  it('reaches onSlotInfo when it has the "<slot>,<keys>,<expires>" shape, and onAux always', () => {
    // REDIS0011 (what Valkey 8.x writes), two well-formed fields and one that is not, EOF, a zero (disabled) CRC.
    const rdb = Buffer.concat([
      Buffer.from('REDIS0011', 'latin1'),
      aux('slot-info', '866,2,0'),
      aux('slot-info', '16383,12,3'),
      aux('slot-info', 'not,a,slot'),
      Buffer.from([255]),
      Buffer.alloc(8),
    ]);
    const slots: Array<[number, number, number]> = [];
    const auxNames: string[] = [];
    const p = new RdbParser({
      onKey: () => {},
      onAux: (name) => auxNames.push(name),
      onSlotInfo: (slot, keys, expires) => slots.push([slot, keys, expires]),
    });
    p.write(rdb);
    const summary = p.end();
    expect(summary.checksum).toBe('disabled');
    expect(slots).toEqual([
      [866, 2, 0],
      [16383, 12, 3],
    ]);
    expect(auxNames).toEqual(['slot-info', 'slot-info', 'slot-info']);
  });
});
