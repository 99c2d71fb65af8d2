import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rdbSnapshot } from '../../src/pipeline/RdbSnapshot.js';
import { useTestScope } from '../harness/TestScope.js';

const scope = useTestScope();
const MB = 1024 * 1024;

describe('rdbSnapshot: the bytes events are pushed with (issue 16)', () => {
  it('count a huge LZF-compressed value at its decoded size, small values at their RDB bytes', async () => {
    const master = await scope.server();
    const c = master.client();
    // 8 MB of one letter: LZF keeps it in about 100 KB of RDB.
    await c.set('letters', 'a'.repeat(8 * MB));
    await c.rpush('list', 'x', 'b'.repeat(2 * MB));
    await c.set('small', 'v');
    await c.call('save');
    const rdb = readFileSync(join(master.dir, 'dump.rdb'));
    expect(rdb.length).toBeLessThan(MB);
    let pushed = 0;
    let events = 0;
    const decoder = rdbSnapshot()({
      replid: 'r'.repeat(40),
      offset: 0,
      emit: (evs, bytes) => {
        events += evs.length;
        pushed += bytes;
      },
    });
    decoder.write(rdb);
    decoder.end();
    expect(events).toBe(3);
    // The RDB's own bytes plus the two huge byte strings decoded from it.
    expect(pushed).toBe(rdb.length + 8 * MB + 2 * MB);
  });
});
