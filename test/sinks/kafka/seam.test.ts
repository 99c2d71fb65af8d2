import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * kafkajsSeam.ts replaces two kafkajs modules through Node's CommonJS cache, which only works if they are in place
 * before kafkajs' producer modules load, whatever else imported 'kafkajs' and in which order. Each case runs in a
 * fresh Node process (a module cache of its own) on the built modules, as `redtail run` does.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const seam = pathToFileURL(join(root, 'dist', 'sinks', 'kafka', 'kafkajsSeam.js')).href;

function run(script: string): { active: boolean; same: boolean | null } {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
  });
  return JSON.parse(out.trim()) as { active: boolean; same: boolean | null };
}

describe('kafkajs seam', () => {
  it('is active when the seam loads first and a module imports kafkajs after it (one kafkajs)', () => {
    const r = run(
      `import * as s from '${seam}'; import k from 'kafkajs'; ` +
        `console.log(JSON.stringify({ active: s.seamActive(), same: k.Kafka === s.kafkajs.Kafka }));`,
    );
    expect(r).toEqual({ active: true, same: true });
  });

  it('is active when kafkajs was loaded before the seam (its producer modules load again around ours)', () => {
    const r = run(
      `import k from 'kafkajs'; const s = await import('${seam}'); ` +
        `console.log(JSON.stringify({ active: s.seamActive(), same: k.Kafka === s.kafkajs.Kafka }));`,
    );
    expect(r).toEqual({ active: true, same: false });
  });
});
