import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { cpus, homedir, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/harness/ports.js';

/**
 * `npm run bench:rdb`: builds (once, cached in ~/.cache/redtail/bench) an RDB of 2.2 million keys of mixed types
 * written by the local redis-server, then times on that same file, in this run:
 *   - redis-check-rdb FILE (Redis's own loader in check mode),
 *   - redtail rdb FILE --stats (framing + CRC64, no value building),
 *   - redtail rdb FILE --stats --deep (every value decoded into JS values),
 *   - redtail rdb FILE > /dev/null (full NDJSON output).
 * Each runs in its own process under /usr/bin/time for wall time and peak RSS.
 */

const here = dirname(fileURLToPath(import.meta.url));
const distRoot = resolve(here, '..');
const cacheDir = process.env.REDTAIL_BENCH_CACHE ?? join(homedir(), '.cache', 'redtail', 'bench');
const rdbPath = join(cacheDir, 'mixed-2m.rdb');

const STRING_KEYS = 1_500_000;
const PER_TYPE = 150_000;

async function waitReady(port: number): Promise<void> {
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
  const port = await freePort();
  const conf = join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      'save ""',
      'appendonly no',
      'enable-debug-command yes',
      '',
    ].join('\n'),
  );
  const proc: ChildProcess = spawn('redis-server', [conf], { stdio: 'ignore' });
  try {
    await waitReady(port);
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

interface Timing {
  seconds: number;
  peakRssMB: number;
  status: number | null;
}

function timed(cmd: string, args: string[], stdoutToNull = true): Timing {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', stdoutToNull ? 'ignore' : 'pipe', 'pipe'],
    maxBuffer: 1 << 26,
  });
  const lines = r.stderr.trim().split('\n');
  const [secs, rssKb] = lines[lines.length - 1]!.split(' ');
  return { seconds: Number(secs), peakRssMB: Math.round(Number(rssKb) / 1024), status: r.status };
}

async function main(): Promise<void> {
  if (!existsSync(rdbPath)) await generate();
  const size = statSync(rdbPath).size;
  const keysOut = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(join(distRoot, 'src/cli/rdbCommand.js'))}); process.exitCode = await m.rdbCommand([${JSON.stringify(rdbPath)}, '--stats']);`,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  const keys = (JSON.parse(keysOut) as { totalKeys: number }).totalKeys;
  const mb = size / 1e6;
  process.stdout.write(`file ${rdbPath}: ${mb.toFixed(1)} MB, ${keys} keys\n\n`);

  const runner = (extra: string[]) => [
    '--input-type=module',
    '-e',
    `const m = await import(${JSON.stringify(join(distRoot, 'src/cli/rdbCommand.js'))}); process.exitCode = await m.rdbCommand([${JSON.stringify(rdbPath)}, ${extra.map((e) => JSON.stringify(e)).join(', ')}]);`,
  ];
  const loadAtStart = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const rows: Array<[string, Timing]> = [];
  rows.push(['redis-check-rdb', timed('redis-check-rdb', [rdbPath])]);
  rows.push(['redtail rdb --stats', timed(process.execPath, runner(['--stats']))]);
  rows.push(['redtail rdb --stats --deep', timed(process.execPath, runner(['--stats', '--deep']))]);
  rows.push(['redtail rdb (NDJSON > /dev/null)', timed(process.execPath, runner([]))]);

  const base = rows[0]![1].seconds;
  const lines = [
    `${'tool'.padEnd(34)}${'seconds'.padStart(9)}${'MB/s'.padStart(9)}${'keys/s'.padStart(12)}${'peak RSS MB'.padStart(13)}${'vs check-rdb'.padStart(14)}`,
  ];
  for (const [name, t] of rows) {
    if (t.status !== 0) lines.push(`${name} exited with ${t.status}`);
    const s = Math.max(t.seconds, 0.01);
    lines.push(
      `${name.padEnd(34)}${t.seconds.toFixed(2).padStart(9)}${(mb / s).toFixed(1).padStart(9)}${Math.round(
        keys / s,
      )
        .toString()
        .padStart(12)}${String(t.peakRssMB).padStart(13)}${`${(s / base).toFixed(2)}x`.padStart(14)}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  appendFileSync(
    join(distRoot, '..', 'bench', 'results.md'),
    [
      '',
      `## bench:rdb ${new Date().toISOString()}`,
      '',
      `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; load average at start ${loadAtStart}, at end ${load(loadavg())}`,
      `- versions: Node ${process.version}, ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim()}`,
      `- file: ${mb.toFixed(1)} MB, ${keys} keys; "vs check-rdb" is redtail's time over redis-check-rdb's (lower is better)`,
      '',
      '```',
      ...lines,
      '```',
      '',
    ].join('\n'),
  );
}

await main();
