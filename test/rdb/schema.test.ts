import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encodeEventLine } from '../../src/events/EventEncoder.js';
import { RdbParser } from '../../src/rdb/RdbParser.js';
import { snapshotBeginEvent, snapshotEndEvent, snapshotEvent } from '../../src/rdb/snapshotEvent.js';
import { schemaProblem } from '../harness/eventSchema.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Beside the main checkout, or one level higher from a worktree under wt/.
const fixturesDir =
  [
    path.resolve(repoRoot, '../shared/fixtures/rdb'),
    path.resolve(repoRoot, '../../shared/fixtures/rdb'),
  ].find(existsSync) ?? path.resolve(repoRoot, '../shared/fixtures/rdb');
const files = readdirSync(fixturesDir).filter((f) => f.endsWith('.rdb'));

/** Snapshot events of every third-party RDB, as a sink writes them, satisfy the published event schema. */
describe('snapshot events and config/event.schema.json', () => {
  it.each(files)('%s', (file) => {
    const src = { replid: 'f'.repeat(40), offset: 0 };
    let seq = 1;
    const problems: string[] = [];
    const check = (line: string) => {
      const p = schemaProblem(JSON.parse(line));
      if (p) problems.push(p);
    };
    check(encodeEventLine(snapshotBeginEvent({ ...src, seq: 0 })));
    const parser = new RdbParser({
      onKey: (rec) => check(encodeEventLine(snapshotEvent(rec, { ...src, seq: seq++ }))),
    });
    parser.write(readFileSync(path.join(fixturesDir, file)));
    check(encodeEventLine(snapshotEndEvent(parser.end(), { ...src, seq })));
    expect(problems).toEqual([]);
  });
});
