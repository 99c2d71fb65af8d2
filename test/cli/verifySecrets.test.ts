import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/RedtailProcess.js';
import { useTestScope } from '../harness/TestScope.js';
import { dropSchema, mirrorCaughtUp, PG_URL, uniqueSchema } from '../sinks/postgres/helpers.js';

const scope = useTestScope();
const PASSWORD = 'verify-secret-7f3a';

/** `redtail verify` run as a user would, with `env` added to the environment. */
function verify(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'redtail.js'), 'verify', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('redtail verify with passwords apart from the URLs', () => {
  it('reads REDTAIL_MASTER_PASSWORD[_FILE] as run does, never prints it, and refuses a password given twice', async () => {
    const master = await scope.server({ password: PASSWORD });
    const schema = uniqueSchema('vsec');
    scope.defer(() => dropSchema(schema));
    const dir = mkdtempSync(join(tmpdir(), 'redtail-vsec-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'master.password');
    writeFileSync(file, `${PASSWORD}\n`);
    await master.client().set('k', 'v');
    const bare = master.url('none');
    const run = scope.redtail(
      ['run', '--master', bare, '--sink', `${PG_URL}?schema=${schema}`, '--checkpoint', join(dir, 'cp.json')],
      { REDTAIL_MASTER_PASSWORD_FILE: file },
    );
    await run.waitFor(() => run.logs().some((l) => l.msg === 'snapshot loaded'), 'the snapshot');
    await mirrorCaughtUp(master, schema);

    const args = ['--master', bare, '--postgres', `${PG_URL}?schema=${schema}`];
    const fromFile = verify(args, { REDTAIL_MASTER_PASSWORD_FILE: file });
    expect(fromFile.out).toMatch(/ 0 differences/);
    expect(fromFile.code).toBe(0);
    expect(fromFile.out).not.toContain(PASSWORD);
    const fromEnv = verify(args, { REDTAIL_MASTER_PASSWORD: PASSWORD });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.out).not.toContain(PASSWORD);
    // Without it the master refuses, and verify says so (exit 2) rather than comparing.
    const without = verify(args, {});
    expect(without.code).toBe(2);
    expect(without.out).toMatch(/NOAUTH/);
    // Given in the URL and apart: which one is meant is not guessed.
    const twice = verify(['--master', master.url(), '--postgres', `${PG_URL}?schema=${schema}`], {
      REDTAIL_MASTER_PASSWORD_FILE: file,
    });
    expect(twice.code).toBe(2);
    expect(twice.out).toMatch(/give it once/);
    expect(twice.out).not.toContain(PASSWORD);
    expect((await run.stop('SIGTERM')).code).toBe(0);
  });
});
