import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { kafkaSaslBrokers } from '../harness/kafka.js';
import { PasswordPostgres } from '../harness/PasswordPostgres.js';
import type { RedtailProcess } from '../harness/RedtailProcess.js';
import { useTestScope } from '../harness/TestScope.js';
import { PG_URL, pgQuery, uniqueSchema } from '../sinks/postgres/helpers.js';

const scope = useTestScope();

/** A distinct password per place, so a leak says which path leaked. Hex only: its URL and JSON forms are itself. */
const secret = (what: string) => `${what}${randomBytes(6).toString('hex')}`;

/** SIGTERM, and SIGKILL if it has not exited in time (a stop waiting on an unreachable sink is the ops issue's). */
async function stopWithin(p: RedtailProcess, ms = 20_000): Promise<void> {
  p.proc.kill('SIGTERM');
  const exited = await Promise.race([p.exited.then(() => true), sleep(ms).then(() => false)]);
  if (!exited) p.proc.kill('SIGKILL');
  await p.exited;
}

async function exitWithin(p: RedtailProcess, ms: number): Promise<number | null> {
  const r = await Promise.race([p.exited, sleep(ms).then(() => null)]);
  if (r === null) throw new Error(`redtail did not exit within ${ms} ms; stderr: ${p.stderr.slice(-2000)}`);
  return r.code;
}

const hasLog = (p: RedtailProcess, f: (l: Record<string, unknown>) => boolean) => () => p.logs().some(f);

describe('secrets never reach logs, errors or checkpoints', () => {
  it('greps every output of the real binary through start, outages, auth failures, stats, SIGTERM and fatal exits', async () => {
    const pw = {
      master: secret('masterpw'),
      masterWrong: secret('masterwrong'),
      sentinelUrl: secret('sentinelurl'),
      sentinelFile: secret('sentinelcfg'),
      pgUserinfo: secret('pguserinfo'),
      pgParam: secret('pgparam'),
      pgWrongUserinfo: secret('pgwronguser'),
      pgFromFile: secret('pgfile'),
      kafkaUnreachable: secret('kafkaunreach'),
      kafkaWrong: secret('kafkawrong'),
    };
    const dir = mkdtempSync(join(tmpdir(), 'redtail-secrets-'));
    const outputs: { run: string; p: RedtailProcess }[] = [];
    const start = (run: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
      const p = scope.redtail(['run', ...args], { REDTAIL_LOG_LEVEL: 'debug', ...env });
      outputs.push({ run, p });
      return p;
    };

    const master = await scope.server({ password: pw.master });
    // The sentinel's own password is the config file's; it knows the master's (auth-pass) to monitor it.
    const sentinel = await scope.server({
      password: pw.sentinelFile,
      sentinel: [
        `sentinel monitor rtm 127.0.0.1 ${master.port} 1`,
        `sentinel auth-pass rtm ${pw.master}`,
        `requirepass ${pw.sentinelFile}`,
      ],
    });
    const pgPrivate = await PasswordPostgres.start(pw.pgFromFile);
    scope.defer(() => pgPrivate.stop());
    await master.client().set('user:1', 'alice');

    // 1. The master refuses a wrong password: fatal, exit 1.
    const wrongMaster = start('master auth failure', [
      '--master',
      `redis://:${pw.masterWrong}@127.0.0.1:${master.port}`,
      '--sink',
      `file:${join(dir, 'r1.ndjson')}`,
      '--checkpoint',
      join(dir, 'r1.cp.json'),
    ]);
    expect(await exitWithin(wrongMaster, 30_000), wrongMaster.stderr).toBe(1);
    expect(wrongMaster.stderr).toMatch(/cannot authenticate/);

    // 2. Passwords from files (Kubernetes secrets): the master's and the Postgres one, against a server that checks.
    const pgPwFile = join(dir, 'pg.password');
    writeFileSync(pgPwFile, `${pw.pgFromFile}\n`);
    const masterPwFile = join(dir, 'master.password');
    writeFileSync(masterPwFile, `${pw.master}\n`);
    const fromFiles = start(
      'passwords from files',
      ['--master', `redis://127.0.0.1:${master.port}`, '--sink', pgPrivate.url(undefined, 'schema=sec')],
      { REDTAIL_POSTGRES_PASSWORD_FILE: pgPwFile, REDTAIL_MASTER_PASSWORD_FILE: masterPwFile },
    );
    await fromFiles.waitFor(
      hasLog(fromFiles, (l) => l.msg === 'snapshot loaded'),
      'the snapshot',
      60_000,
    );
    // The password from the file opened the scram server: the mirror fills (the commit follows the load).
    let rows: string[] = [];
    for (let i = 0; i < 600 && !rows.includes('user:1'); i++) {
      rows = await privateRows(pgPrivate, pw.pgFromFile).catch(() => []);
      if (!rows.includes('user:1')) await sleep(100);
    }
    expect(rows).toContain('user:1');
    await stopWithin(fromFiles);

    // 3. The main run: the master through Sentinel (the sentinel's password in the config file), a master URL
    // with a password, a Postgres URL with a password in its userinfo (the trust server), stats every 200 ms;
    // then the master goes away (retries), then SIGTERM.
    const schemaTrust = uniqueSchema('sec');
    const config = join(dir, 'redtail.json');
    writeFileSync(
      config,
      JSON.stringify({
        sentinel: { addresses: [`127.0.0.1:${sentinel.port}`], masterName: 'rtm', password: pw.sentinelFile },
        sinks: [
          `file:${join(dir, 'r2.ndjson')}`,
          `${PG_URL.replace('postgres@', `postgres:${pw.pgUserinfo}@`)}?schema=${schemaTrust}&name=trust`,
        ],
        checkpoint: join(dir, 'r2.cp.json'),
        statsIntervalMs: 200,
        link: { readTimeoutMs: 5_000 },
      }),
    );
    const main = start('main', ['--config', config, '--master', `redis://:${pw.master}@127.0.0.1:1`]);
    await main.waitFor(
      hasLog(main, (l) => l.msg === 'snapshot loaded'),
      'the snapshot',
      60_000,
    );
    await master.client().set('user:2', 'bob');
    await main.waitFor(
      () => readFileSync(join(dir, 'r2.ndjson'), 'utf8').includes('user:2'),
      'the write in the file sink',
      60_000,
    );
    await main.waitFor(
      hasLog(main, (l) => l.msg === 'stats'),
      'a stats line',
    );
    await master.stop();
    await main.waitFor(
      hasLog(main, (l) => l.msg === 'replication link lost' || l.msg === 'reconnecting'),
      'the master outage',
      60_000,
    );
    await main.waitFor(
      () => main.logs().filter((l) => l.msg === 'replication link lost').length >= 2,
      'retries',
      60_000,
    );
    await stopWithin(main);
    const started = main.logs().find((l) => l.msg === 'starting replication');

    // 4. A sentinel URL with a wrong password: the link retries naming the sentinel, then SIGTERM.
    const wrongSentinel = start('sentinel auth failure', [
      '--sentinel',
      `redis://:${pw.sentinelUrl}@127.0.0.1:${sentinel.port}`,
      '--master-name',
      'rtm',
      '--master',
      `redis://:${pw.master}@127.0.0.1:1`,
      '--sink',
      `file:${join(dir, 'r3.ndjson')}`,
      '--checkpoint',
      join(dir, 'r3.cp.json'),
    ]);
    await wrongSentinel.waitFor(
      hasLog(wrongSentinel, (l) => /WRONGPASS|invalid password|AUTH/i.test(String(l.err))),
      'the sentinel refusing the password',
    );
    await stopWithin(wrongSentinel);

    // 5. Kafka brokers that cannot be reached, with SASL credentials in the URL: retries, then a fatal exit.
    const kafkaDown = start('kafka unreachable', [
      '--master',
      `redis://:${pw.master}@127.0.0.1:1`,
      '--sink',
      `kafka://u:${pw.kafkaUnreachable}@127.0.0.1:1?sasl=plain&connectTimeoutMs=3000`,
    ]);
    expect(await exitWithin(kafkaDown, 90_000)).not.toBe(0);
    expect(kafkaDown.logs().filter((l) => /retrying/.test(String(l.msg))).length).toBeGreaterThanOrEqual(2);

    // 6. Postgres refusing the password of the URL's userinfo, and of its password= parameter: fatal exits.
    for (const [run, url] of [
      ['postgres userinfo auth failure', pgPrivate.url(pw.pgWrongUserinfo, 'schema=sec')],
      ['postgres password= auth failure', pgPrivate.url(undefined, `password=${pw.pgParam}&schema=sec`)],
    ] as const) {
      const p = start(run, ['--master', `redis://:${pw.master}@127.0.0.1:1`, '--sink', url]);
      expect(await exitWithin(p, 60_000)).toBe(1);
      expect(p.stderr).toMatch(/password authentication failed/);
    }

    // 7. The SASL broker refusing the Kafka password (when the test broker has a SASL listener).
    const sasl = kafkaSaslBrokers();
    if (sasl) {
      const p = start('kafka SASL auth failure', [
        '--master',
        `redis://:${pw.master}@127.0.0.1:1`,
        '--sink',
        `kafka://redtail:${pw.kafkaWrong}@${sasl.join(',')}?sasl=plain&connectTimeoutMs=10000`,
      ]);
      expect(await exitWithin(p, 90_000)).not.toBe(0);
      expect(p.stderr).toMatch(/SASL|authenticat/i);
    }

    // Everything written: each run's stdout and stderr, the files the runs wrote (checkpoints, events), and the
    // Postgres checkpoint rows. The config and password files hold secrets by design and are left out.
    const written: [string, string][] = outputs.flatMap(({ run, p }) => [
      [`${run} stdout`, p.stdout],
      [`${run} stderr`, p.stderr],
    ]);
    // Recursively: the spool directory's segments (the master's stream) and the lock files count too.
    for (const f of readdirSync(dir, { recursive: true, withFileTypes: true }))
      if (f.isFile() && !['redtail.json', 'pg.password', 'master.password'].includes(f.name))
        written.push([f.name, readFileSync(join(f.parentPath, f.name), 'latin1')]);
    written.push([
      'postgres checkpoints',
      JSON.stringify(await pgQuery(`SELECT * FROM "${schemaTrust}".checkpoints`)),
    ]);
    // The grep finds a secret where one is: the config file holds the sentinel's.
    expect(readFileSync(config, 'utf8')).toContain(pw.sentinelFile);
    const leaks = Object.entries(pw).flatMap(([name, value]) =>
      written.filter(([, text]) => text.includes(value)).map(([where]) => `${name} in ${where}`),
    );
    expect(leaks).toEqual([]);
    // The startup line still names the sinks, in their display form.
    expect(JSON.stringify(started?.sinks)).toContain(`postgres:***@`);
    await pgQuery(`DROP SCHEMA IF EXISTS "${schemaTrust}" CASCADE`);
  }, 400_000);
});

async function privateRows(server: PasswordPostgres, password: string): Promise<string[]> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: server.url(password) });
  await c.connect();
  try {
    const r = await c.query<{ key_text: string }>('SELECT key_text FROM sec.keys');
    return r.rows.map((row) => row.key_text);
  } finally {
    await c.end();
  }
}
