import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/RedtailProcess.js';
import { useTestScope } from '../harness/TestScope.js';
import { tempDir, until } from './helpers.js';

const scope = useTestScope();
const bin = join(repoRoot, 'bin', 'redtail.js');
const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

/** `redtail args` with stdout and stderr on a pseudo-terminal (util-linux `script`), its screen output collected. */
function onTerminal(args: string[], stdout = '/dev/null'): { proc: ChildProcess; screen: () => string } {
  const cmd = `exec ${quote(process.execPath)} ${quote(bin)} ${args.map(quote).join(' ')} > ${quote(stdout)}`;
  // The command's stdout goes to a file; stderr stays on the terminal, as for a person watching a load.
  const proc = spawn('script', ['-qfec', cmd, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: repoRoot,
  });
  let out = '';
  proc.stdout!.on('data', (d) => {
    out += d;
  });
  scope.defer(() => {
    proc.stdin!.end();
    proc.kill('SIGKILL');
  });
  return { proc, screen: () => out };
}

const exited = (p: ChildProcess) =>
  new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (c) => r(c))));

/** A master holding `keys` keys, saved to its RDB file. */
async function populated(keys: number) {
  const master = await scope.server({ config: { 'enable-debug-command': 'yes' } });
  master.cli(['DEBUG', 'POPULATE', String(keys), 'key', '40']);
  master.cli(['SAVE']);
  return { master, rdb: join(master.dir, 'dump.rdb') };
}

/** The progress lines drawn on the screen (each redraw starts with CR and erase-line). */
const progressLines = (screen: string, label: string) =>
  screen
    .split('\r')
    .map((l) => l.replace(/^\x1b\[2K/, ''))
    .filter((l) => l.startsWith(`${label}  `));

describe('on a terminal', () => {
  it('redtail rdb shows a live progress line with size and ETA, and nothing when stderr is not a terminal', async () => {
    const { rdb } = await populated(400_000);
    const t = onTerminal(['rdb', rdb]);
    expect(await exited(t.proc)).toBe(0);
    const lines = progressLines(t.screen(), 'rdb');
    expect(lines.length, t.screen().slice(0, 500)).toBeGreaterThan(0);
    expect(lines.at(-1)).toMatch(
      /^rdb {2}[\d.]+[kM]? keys {2}[\d.]+\/[\d.]+ MB \(\d+%\) {2}[\d.]+ MB\/s {2}[\d.]+[kM]? keys\/s {2}ETA \d+s$/,
    );

    const piped = spawnSync(process.execPath, [bin, 'rdb', rdb, '--stats'], { encoding: 'utf8' });
    expect(piped.status).toBe(0);
    expect(piped.stderr).toBe('');
  });

  it('redtail run shows the snapshot load with its announced size and writes readable log lines', async () => {
    const { master } = await populated(300_000);
    const dir = tempDir('tty-run');
    const t = onTerminal([
      'run',
      '--master',
      master.url(),
      '--sink',
      `file:${join(dir, 'events.ndjson')}`,
      '--checkpoint',
      join(dir, 'cp.json'),
    ]);
    await until(() => t.screen().includes('snapshot loaded'), 'the snapshot to load', 120_000);
    t.proc.stdin!.end();
    t.proc.kill('SIGTERM');
    const screen = t.screen();
    const lines = progressLines(screen, 'snapshot');
    expect(
      lines.some((l) => /\/[\d.]+ MB \(\d+%\).*ETA/.test(l)),
      screen.slice(-2000),
    ).toBe(true);
    // Readable lines, not JSON: `HH:MM:SS.mmm INFO: message {fields}` (colours stripped).
    const plain = screen.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    expect(plain).toMatch(/\[\d\d:\d\d:\d\d\.\d{3}\] INFO: snapshot loaded \{"keys":300000/);
    expect(plain).not.toMatch(/^\{"level"/m);
  }, 180_000);

  it('--log-format forces JSON on a terminal, and readable lines (the fatal one last) on a pipe', async () => {
    const master = await scope.server({ password: 'right' });
    const dir = tempDir('log-format');
    const wrong = master.url().replace('redis://', 'redis://:wrong@');
    const t = onTerminal([
      'run',
      '--log-format',
      'json',
      '--master',
      wrong,
      '--checkpoint',
      join(dir, 'a.json'),
    ]);
    expect(await exited(t.proc)).toBe(1);
    const jsonLines = t
      .screen()
      .split(/\r?\n/)
      .filter((l) => l.startsWith('{'));
    expect(jsonLines.length).toBeGreaterThan(0);
    expect(jsonLines.some((l) => JSON.parse(l).msg === 'fatal')).toBe(true);

    const piped = spawnSync(
      process.execPath,
      [bin, 'run', '--log-format', 'pretty', '--master', wrong, '--checkpoint', join(dir, 'b.json')],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(piped.status).toBe(1);
    const lines = piped.stderr.trim().split('\n');
    expect(lines.some((l) => l.startsWith('{'))).toBe(false);
    expect(lines.at(-2)).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] ERROR: fatal \{"err":".*WRONGPASS/);
    expect(lines.at(-1)).toMatch(/^redtail: .*WRONGPASS/);
  });
});
