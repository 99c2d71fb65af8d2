import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { distRoot, mixedRdb } from './rdbFixture.js';

/**
 * `npm run bench:rdb`: builds (once, cached in ~/.cache/redtail/bench; see rdbFixture.ts) an RDB of 2.2 million
 * keys of mixed types written by the local redis-server, then times on that same file, in this run:
 *   - redis-check-rdb FILE (Redis's own loader in check mode),
 *   - redtail rdb FILE --stats (framing + CRC64, no value building),
 *   - redtail rdb FILE --stats --deep (every value decoded into JS values),
 *   - redtail rdb FILE > /dev/null (full NDJSON output).
 * Each runs in its own process under /usr/bin/time for wall time, CPU time and peak RSS.
 */

interface Timing {
  seconds: number;
  /** User + system CPU seconds, all threads: less sensitive than wall time to other work on a shared machine. */
  cpuSeconds: number;
  peakRssMB: number;
  status: number | null;
}

function timed(cmd: string, args: string[], stdoutToNull = true): Timing {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', cmd, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', stdoutToNull ? 'ignore' : 'pipe', 'pipe'],
    maxBuffer: 1 << 26,
  });
  const lines = r.stderr.trim().split('\n');
  const [secs, rssKb, user, sys] = lines[lines.length - 1]!.split(' ');
  return {
    seconds: Number(secs),
    cpuSeconds: Number(user) + Number(sys),
    peakRssMB: Math.round(Number(rssKb) / 1024),
    status: r.status,
  };
}

async function main(): Promise<void> {
  const rdbPath = await mixedRdb();
  const loadAtStart = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
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
  const rows: Array<[string, Timing]> = [];
  rows.push(['redis-check-rdb', timed('redis-check-rdb', [rdbPath])]);
  rows.push(['redtail rdb --stats', timed(process.execPath, runner(['--stats']))]);
  rows.push(['redtail rdb --stats --deep', timed(process.execPath, runner(['--stats', '--deep']))]);
  rows.push(['redtail rdb (NDJSON > /dev/null)', timed(process.execPath, runner([]))]);

  const base = rows[0]![1].seconds;
  const baseCpu = Math.max(rows[0]![1].cpuSeconds, 0.01);
  const lines = [
    `${'tool'.padEnd(34)}${'seconds'.padStart(9)}${'MB/s'.padStart(9)}${'keys/s'.padStart(12)}${'peak RSS MB'.padStart(13)}${'vs check-rdb'.padStart(14)}${'CPU s'.padStart(8)}${'CPU vs check-rdb'.padStart(18)}`,
  ];
  for (const [name, t] of rows) {
    if (t.status !== 0) lines.push(`${name} exited with ${t.status}`);
    const s = Math.max(t.seconds, 0.01);
    lines.push(
      `${name.padEnd(34)}${t.seconds.toFixed(2).padStart(9)}${(mb / s).toFixed(1).padStart(9)}${Math.round(
        keys / s,
      )
        .toString()
        .padStart(
          12,
        )}${String(t.peakRssMB).padStart(13)}${`${(s / base).toFixed(2)}x`.padStart(14)}${t.cpuSeconds
        .toFixed(2)
        .padStart(8)}${`${(t.cpuSeconds / baseCpu).toFixed(2)}x`.padStart(18)}`,
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
      `- file: ${mb.toFixed(1)} MB, ${keys} keys; "vs check-rdb" is redtail's time over redis-check-rdb's (lower is better); "CPU" is user + system seconds of all threads (redtail rdb computes the CRC64 of big files on a second thread)`,
      '',
      '```',
      ...lines,
      '```',
      '',
    ].join('\n'),
  );
}

await main();
