import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runOptions } from '../../src/cli/runOptions.js';
import { repoRoot } from '../harness/RedtailProcess.js';

const dir = mkdtempSync(join(tmpdir(), 'redtail-check-'));

/** The real binary's `check-config`, with only the environment given (not the test runner's REDTAIL_*). */
async function checkConfig(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [join(repoRoot, 'bin/redtail.js'), 'check-config', ...args],
      { env: { PATH: process.env.PATH, ...env } },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('redtail check-config', () => {
  it('prints the effective configuration with origins; a secret given by file never appears', async () => {
    const masterPw = `filemaster${Date.now()}`;
    const pgPw = `filepg${Date.now()}`;
    const pwFile = join(dir, 'master.pw');
    writeFileSync(pwFile, `${masterPw}\n`);
    const config = join(dir, 'c.json');
    writeFileSync(
      config,
      JSON.stringify({
        sinks: ['postgres://app@db/x?schema=s'],
        sinkOptions: { postgres: { password: pgPw } },
      }),
    );
    const r = await checkConfig(
      ['--config', config, '--master', 'redis://127.0.0.1:7000', '--log-level', 'warn'],
      {
        REDTAIL_MASTER_PASSWORD_FILE: pwFile,
        REDTAIL_CHECKPOINT: '/var/lib/redtail/cp.json',
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const line = (path: string) => r.stdout.split('\n').find((l) => l.startsWith(`${path} `)) ?? '';
    expect(line('master')).toMatch(/"redis:\/\/127\.0\.0\.1:7000"\s+\(flag\)$/);
    expect(line('logLevel')).toMatch(/\(flag\)$/);
    expect(line('checkpoint')).toMatch(/"\/var\/lib\/redtail\/cp\.json"\s+\(env\)$/);
    expect(line('sinks')).toMatch(new RegExp(`\\(file ${config}\\)$`));
    expect(line('ack')).toMatch(/\(default\)$/);
    expect(line('masterPassword')).toMatch(/"\*\*\*"\s+\(env REDTAIL_MASTER_PASSWORD_FILE/);
    expect(line('sinkOptions.postgres.password')).toMatch(
      /"\*\*\*"\s+\(file .* sinkOptions\.postgres\.password\)$/,
    );
    expect(r.stdout + r.stderr).not.toContain(masterPw);
    expect(r.stdout + r.stderr).not.toContain(pgPw);
  });

  it('names the setting of each problem and exits 2, with no secret in the messages', async () => {
    const pw = `urlpw${Date.now()}`;
    const r = await checkConfig([
      '--master',
      `redis://:${pw}@h:1/3`,
      '--sink',
      'stdout',
      '--sink',
      `kafak://u:${pw}@b:9092`,
      '--sink',
      `postgres://app:${pw}@db/x?changes=maybe`,
    ]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^redtail check-config: master: invalid master URL 'redis:\/\/:\*\*\*@h:1\/3'/m);
    expect(r.stderr).toMatch(/^redtail check-config: sinks\[1\]: unknown scheme 'kafak'/m);
    expect(r.stderr).toMatch(/^redtail check-config: sinks\[2\]: changes must be true or false/m);
    expect(r.stderr).not.toContain(pw);
  });

  it("accepts every option of 'redtail run'", async () => {
    for (const [name, spec] of Object.entries(runOptions)) {
      if (name === 'help' || name === 'config') continue;
      const args = spec.type === 'boolean' ? [`--${name}`] : [`--${name}`, 'x'];
      const r = await checkConfig(args);
      expect(r.stderr, name).not.toMatch(/Unknown option/);
    }
    const bad = await checkConfig(['--no-such-flag']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Unknown option '--no-such-flag'/);
  });
});
