import { execFileSync, spawnSync } from 'node:child_process';
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

  it("schedules kafkajs' idle request-queue check without a negative timeout (no TimeoutNegativeWarning)", () => {
    // What every connection does when its queue is idle: throttledUntil is -1, so kafkajs asked for a delay of
    // minus the current time, and Node 24+ printed a TimeoutNegativeWarning on stderr.
    const queue = (withSeam: boolean) =>
      spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `${withSeam ? `await import('${seam}');` : ''} import { createRequire } from 'node:module'; ` +
            `const require = createRequire(import.meta.url); ` +
            `const RequestQueue = require('kafkajs/src/network/requestQueue/index.js'); ` +
            `const q = new RequestQueue({ instrumentationEmitter: null, maxInFlightRequests: 1, requestTimeout: 1000, ` +
            `enforceRequestTimeout: false, clientId: 't', broker: 'b', logger: { debug() {}, info() {}, warn() {}, error() {} }, ` +
            `isConnected: () => true }); ` +
            `let checked = 0; q.checkPendingRequests = () => { checked++; }; q.scheduleCheckPendingRequests(); ` +
            `setTimeout(() => console.log(checked), 50);`,
        ],
        { cwd: root, encoding: 'utf8' },
      );
    const plain = queue(false);
    const patched = queue(true);
    // The check still runs (after 1 ms, as Node ran the negative delay), only the warning is gone.
    expect(plain.stdout.trim()).toBe('1');
    expect(patched.stdout.trim()).toBe('1');
    if (Number(process.versions.node.split('.')[0]) >= 24)
      expect(plain.stderr).toMatch(/TimeoutNegativeWarning/);
    expect(patched.stderr).not.toMatch(/TimeoutNegativeWarning/);
  });
});
