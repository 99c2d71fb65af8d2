import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../harness/ports.js';
import type { RedtailProcess } from '../harness/RedtailProcess.js';
import type { TestScope } from '../harness/TestScope.js';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `redtail-${prefix}-`));
}

/** `redtail run` with its HTTP endpoint on a free loopback port. */
export async function runWithHttp(
  scope: TestScope,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{
  p: RedtailProcess;
  port: number;
  get: (path: string) => Promise<{ status: number; body: string }>;
}> {
  const port = await freePort();
  const p = scope.redtail(['run', '--http', `127.0.0.1:${port}`, ...args], env);
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  };
  await p.waitFor(() => p.stderr.includes('serving /metrics'), 'the HTTP endpoint');
  return { p, port, get };
}

/** The value of one sample in Prometheus text format (`name` or `name{labels}` exactly), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (line.slice(0, sp) === series) return Number(line.slice(sp + 1));
  }
  return undefined;
}

/** The metric family names in a scrape (from its TYPE lines). */
export function families(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
}

/** Polls `f` until it returns true; a time limit only detects a hang. */
export async function until(
  f: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 45_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
