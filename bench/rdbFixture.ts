import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/harness/ports.js';

/**
 * The benchmarks' big RDB: 2.2 million keys of mixed types written by the local redis-server, built once and cached
 * in ~/.cache/redtail/bench (REDTAIL_BENCH_CACHE). bench:rdb parses it; bench:spool loads a master with it.
 */

export const distRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = process.env.REDTAIL_BENCH_CACHE ?? join(homedir(), '.cache', 'redtail', 'bench');
export const rdbPath = join(cacheDir, 'mixed-2m.rdb');

const STRING_KEYS = 1_500_000;
const PER_TYPE = 150_000;

export async function waitReady(port: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const ok = await new Promise<boolean>((res) => {
      const s = createConnection(port, '127.0.0.1');
      s.once('connect', () => {
        s.end();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    await sleep(25);
  }
  throw new Error('redis-server did not start');
}

function cli(port: number, args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
}

/**
 * A bench redis-server on a free loopback port, data in `dir`, no snapshots of its own; `extra` config lines;
 * `binary`: another redis-server than the one on PATH (e.g. 8.0 for hash field TTLs).
 */
export async function startBenchRedis(
  dir: string,
  extra: string[],
  binary = 'redis-server',
): Promise<{ port: number; proc: ChildProcess; cli: (args: string[]) => string }> {
  const port = await freePort();
  const conf = join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', ...extra, ''].join('\n'),
  );
  const proc = spawn(binary, [conf], { stdio: 'ignore' });
  await waitReady(port);
  return { port, proc, cli: (args) => cli(port, args) };
}

// One Lua call per batch keeps population fast without a client library; every type gets compact and big
// encodings (listpack vs hashtable/skiplist/quicklist) so the parser's hot paths are all exercised.
const POPULATE = `
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = from, to do
  local s = tostring(i)
  redis.call('HSET', 'h:' .. s, 'name', 'user' .. s, 'age', i % 90, 'city', 'city-' .. (i % 1000))
  redis.call('RPUSH', 'l:' .. s, 'a' .. s, 'b', i, 'ccccccccccccccccc')
  redis.call('SADD', 'si:' .. s, i, i + 1, i + 2)
  redis.call('SADD', 'ss:' .. s, 'm' .. s, 'n' .. s)
  redis.call('ZADD', 'z:' .. s, i, 'x' .. s, i / 3, 'y' .. s)
  if i % 1000 == 0 then
    for j = 1, 300 do
      redis.call('HSET', 'bh:' .. s, 'field' .. j, 'value-' .. j .. '-' .. s)
      redis.call('ZADD', 'bz:' .. s, j * 1.5, 'member' .. j)
      redis.call('RPUSH', 'bl:' .. s, 'element-' .. j .. '-' .. s)
    end
    redis.call('XADD', 'st:' .. s, '*', 'f1', 'v1', 'f2', s)
  end
end
return to
`;

async function generate(): Promise<void> {
  mkdirSync(cacheDir, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'redtail-bench-'));
  const { port, proc } = await startBenchRedis(dir, ['enable-debug-command yes']);
  try {
    process.stdout.write(`populating ${STRING_KEYS} strings and ${PER_TYPE} keys of each other type...\n`);
    cli(port, ['DEBUG', 'POPULATE', String(STRING_KEYS), 'key', '64']);
    const sha = cli(port, ['SCRIPT', 'LOAD', POPULATE]).trim();
    for (let from = 1; from <= PER_TYPE; from += 10_000) {
      cli(port, ['EVALSHA', sha, '0', String(from), String(Math.min(PER_TYPE, from + 9_999))]);
    }
    for (let i = 0; i < 50_000; i++)
      if (i % 10_000 === 0) cli(port, ['SET', `big:${i}`, 'x'.repeat(100_000)]);
    cli(port, ['SAVE']);
    copyFileSync(join(dir, 'dump.rdb'), rdbPath);
  } finally {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The path of the mixed RDB, built first when it is not cached. */
export async function mixedRdb(): Promise<string> {
  if (!existsSync(rdbPath)) await generate();
  return rdbPath;
}
