import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisServer } from '../harness/RedisServer.js';
import { RedtailProcess, repoRoot } from '../harness/RedtailProcess.js';
import { generateCa } from '../harness/tls.js';
import { dropSchema, PG_URL, pgQuery, uniqueSchema } from '../sinks/postgres/helpers.js';
import { expectExactlyOnceAcrossReplicaKills, masterOffset, writes } from './linkChecks.js';

const run = promisify(execFile);
const running: RedtailProcess[] = [];
const servers: RedisServer[] = [];
const dirs: string[] = [];
const schemas: string[] = [];

afterEach(async () => {
  for (const p of running.splice(0)) await p.stop('SIGKILL');
  for (const s of servers.splice(0).reverse()) await s.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  for (const s of schemas.splice(0)) await dropSchema(s);
});

async function tlsMaster(opts: Parameters<typeof RedisServer.start>[0] = {}): Promise<RedisServer> {
  const s = await RedisServer.start({ tls: {}, ...opts });
  servers.push(s);
  return s;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-tls-'));
  dirs.push(dir);
  return dir;
}

function redtail(args: string[], env: NodeJS.ProcessEnv = {}): RedtailProcess {
  const proc = RedtailProcess.start(
    ['run', '--checkpoint', join(tempDir(), 'checkpoint.json'), ...args],
    env,
  );
  running.push(proc);
  return proc;
}

/** Waits for redtail to exit and returns its plain (non-JSON) stderr lines, after checking the exit status. */
async function fatalLines(proc: RedtailProcess): Promise<string[]> {
  const { code } = await proc.exited;
  expect(code).toBe(1);
  return proc.stderr.split('\n').filter((l) => l && !l.startsWith('{'));
}

describe('TLS to the master (rediss://)', () => {
  it('full sync, stream and partial resyncs after the master kills the link, with AUTH, verified by --tls-ca', async () => {
    const m = await tlsMaster({ password: 'pw' });
    const c = m.client();
    await c.set('before', 'x');
    const proc = redtail(['--master', m.tlsUrl(), '--tls-ca', m.tlsFiles!.ca]);
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    expect(proc.events.find((e) => e.op === 'snapshot' && e.key === 'before')).toMatchObject({ value: 'x' });
    await expectExactlyOnceAcrossReplicaKills(m, proc);
    const replica = (await m.info('replication')).slave0 ?? '';
    expect(replica).toMatch(/state=online/);
    expect((await proc.stop()).code).toBe(0);
  });

  it('mutual TLS: presents the client certificate from the environment to a master with tls-auth-clients yes', async () => {
    const m = await tlsMaster({ tls: { authClients: 'yes' } });
    const f = m.tlsFiles!;
    const proc = redtail(['--master', m.tlsUrl()], {
      REDTAIL_TLS_CA: f.ca,
      REDTAIL_TLS_CERT: f.clientCert,
      REDTAIL_TLS_KEY: f.clientKey,
    });
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    await m.client().set('mtls:key', 'v');
    await proc.waitFor(() => writes(proc.events, 'mtls:').length === 1, 'the write');
    expect(writes(proc.events, 'mtls:')[0]).toMatchObject({ op: 'set', key: 'mtls:key', value: 'v' });
  });

  it('verifies the certificate against --tls-servername instead of the host dialled', async () => {
    const m = await tlsMaster();
    // The certificate names IP:127.0.0.1 and DNS:localhost; dialling 127.0.0.1 but checking for localhost works.
    const ok = redtail(['--master', m.tlsUrl(), '--tls-ca', m.tlsFiles!.ca, '--tls-servername', 'localhost']);
    await ok.waitFor(() => ok.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    const wrong = redtail([
      '--master',
      m.tlsUrl(),
      '--tls-ca',
      m.tlsFiles!.ca,
      '--tls-servername',
      'redis.example',
    ]);
    const lines = await fatalLines(wrong);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`master 127.0.0.1:${m.tlsPort}`);
    expect(lines[0]).toMatch(/is not for 'redis.example'.*DNS:localhost.*--tls-servername/);
  });

  it('skips verification with --tls-insecure, and says so in a warning', async () => {
    const m = await tlsMaster();
    const proc = redtail(['--master', m.tlsUrl(), '--tls-insecure']);
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    const warning = proc.logs().find((l) => /verification is off/.test(String(l.msg)));
    expect(warning?.level).toBe(40);
  });
});

describe('TLS misconfiguration ends redtail with one line naming the master and what to change', () => {
  it('a certificate signed by another CA than --tls-ca', async () => {
    const m = await tlsMaster();
    const other = generateCa(tempDir(), 'other-');
    const proc = redtail(['--master', m.tlsUrl(), '--tls-ca', other.ca]);
    const lines = await fatalLines(proc);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`master 127.0.0.1:${m.tlsPort}`);
    expect(lines[0]).toContain(`not signed by the CA in ${other.ca}`);
    expect(lines[0]).toContain('--tls-ca FILE');
  });

  it('a private CA without --tls-ca (the system CAs do not know it)', async () => {
    const m = await tlsMaster();
    const lines = await fatalLines(redtail(['--master', m.tlsUrl()]));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/master 127\.0\.0\.1:\d+ is not trusted by the system CAs .*--tls-ca FILE/);
  });

  it('no client certificate for a master with tls-auth-clients yes', async () => {
    const m = await tlsMaster({ tls: { authClients: 'yes' } });
    const lines = await fatalLines(redtail(['--master', m.tlsUrl(), '--tls-ca', m.tlsFiles!.ca]));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/master 127\.0\.0\.1:\d+ requires a TLS client certificate .*--tls-cert FILE/);
  });

  it('a client certificate the master does not trust', async () => {
    const m = await tlsMaster({ tls: { authClients: 'yes' } });
    const other = await tlsMaster();
    const lines = await fatalLines(
      redtail([
        '--master',
        m.tlsUrl(),
        '--tls-ca',
        m.tlsFiles!.ca,
        '--tls-cert',
        other.tlsFiles!.clientCert,
        '--tls-key',
        other.tlsFiles!.clientKey,
      ]),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/master 127\.0\.0\.1:\d+ does not trust redtail's client certificate/);
  });

  it('candidates (several --master) that all fail on the TLS settings, naming each', async () => {
    const a = await tlsMaster();
    const b = await tlsMaster();
    const lines = await fatalLines(
      redtail([
        '--master',
        a.tlsUrl(),
        '--master',
        b.tlsUrl(),
        '--tls-ca',
        a.tlsFiles!.ca,
        '--tls-servername',
        'x.example',
      ]),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^redtail: no candidate master can be reached: /);
    expect(lines[0]).toContain(`candidate 127.0.0.1:${a.tlsPort} is not for 'x.example'`);
    expect(lines[0]).toContain(
      `candidate 127.0.0.1:${b.tlsPort} is not signed by the CA in ${a.tlsFiles!.ca}`,
    );
  });

  it("rediss:// to the master's plaintext port", async () => {
    const m = await tlsMaster();
    const dir = tempDir();
    // A plaintext port reads the TLS hello as the start of a command and waits: the connect timeout ends that.
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ link: { connectTimeoutMs: 1000 } }));
    const proc = redtail([
      '--config',
      join(dir, 'c.json'),
      '--master',
      `rediss://127.0.0.1:${m.port}`,
      '--tls-ca',
      m.tlsFiles!.ca,
    ]);
    const lines = await fatalLines(proc);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`master 127.0.0.1:${m.port} does not speak TLS on this port`);
    expect(lines[0]).toMatch(/use redis:\/\//);
  });

  it("redis:// to the master's TLS port", async () => {
    const m = await tlsMaster();
    const lines = await fatalLines(redtail(['--master', `redis://127.0.0.1:${m.tlsPort}`]));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`master 127.0.0.1:${m.tlsPort} speaks TLS on this port: use rediss://`);
  });

  it('unreadable TLS files are a usage error (exit 2) naming the file', async () => {
    const m = await tlsMaster();
    const missing = join(tempDir(), 'missing.pem');
    const proc = redtail(['--master', m.tlsUrl(), '--tls-ca', missing]);
    const { code } = await proc.exited;
    expect(code).toBe(2);
    expect(proc.stderr).toContain(`cannot read the TLS CA file ${missing}: ENOENT`);
  });
});

describe('TLS through Sentinel', () => {
  it('dials the sentinel with --sentinel-tls and the master it names with TLS, from a rediss:// master URL', async () => {
    const m = await tlsMaster({ tls: { authClients: 'yes' } });
    const f = m.tlsFiles!;
    // The sentinel listens with TLS too and monitors the master's TLS port (tls-replication yes), so the address it
    // names is one that only TLS can use.
    const sentinel = await RedisServer.start({
      tls: { files: f, authClients: 'yes' },
      sentinel: [`sentinel monitor mymaster 127.0.0.1 ${m.tlsPort} 1`],
    });
    servers.push(sentinel);
    const named = (await sentinel
      .client()
      .call('SENTINEL', 'get-master-addr-by-name', 'mymaster')) as string[];
    expect(named).toEqual(['127.0.0.1', String(m.tlsPort)]);
    const proc = redtail([
      '--sentinel',
      `127.0.0.1:${sentinel.tlsPort}`,
      '--sentinel-tls',
      '--master-name',
      'mymaster',
      '--master',
      'rediss://mymaster',
      '--tls-ca',
      f.ca,
      '--tls-cert',
      f.clientCert,
      '--tls-key',
      f.clientKey,
    ]);
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    await m.client().set('via:sentinel', 'v');
    await proc.waitFor(() => writes(proc.events, 'via:').length === 1, 'the write');
  });
});

describe('Postgres sink over TLS', () => {
  it('fetches exact values (SORT ... STORE) from the master with the same TLS settings, client certificate included; verify agrees', async () => {
    const m = await tlsMaster({ tls: { authClients: 'yes' } });
    const f = m.tlsFiles!;
    const schema = uniqueSchema('tls');
    schemas.push(schema);
    const c = m.client();
    await c.rpush('src', 'pear', 'fig', 'apple');
    const proc = redtail([
      '--master',
      m.tlsUrl(),
      '--tls-ca',
      f.ca,
      '--tls-cert',
      f.clientCert,
      '--tls-key',
      f.clientKey,
      '--sink',
      `${PG_URL}?schema=${schema}`,
    ]);
    // After the snapshot, so that the SORT reaches the sink as a stream op, whose result it must fetch.
    for (let i = 0; i < 600 && !/state=online/.test((await m.info('replication')).slave0 ?? ''); i++) {
      if (proc.proc.exitCode !== null) throw new Error(`redtail exited: ${proc.stderr.slice(-2000)}`);
      await sleep(50);
    }
    await c.sort('src', 'ALPHA', 'STORE', 'sorted');
    const target = await masterOffset(m);
    let rows: { value: unknown }[] = [];
    for (let i = 0; i < 600 && rows.length === 0; i++) {
      if (proc.proc.exitCode !== null) throw new Error(`redtail exited: ${proc.stderr.slice(-2000)}`);
      const cp = await pgQuery<{ offset: string }>(`SELECT "offset" FROM "${schema}".checkpoints`).catch(
        () => [],
      );
      if (cp.length > 0 && Number(cp[0]!.offset) >= target)
        rows = await pgQuery(`SELECT value FROM "${schema}".keys WHERE key_text = 'sorted'`);
      else await sleep(50);
    }
    expect(rows).toEqual([{ value: ['apple', 'fig', 'pear'] }]);
    // The fetch connection is a second TLS client of the master, named by the sink.
    const clients = String(await c.call('CLIENT', 'LIST'));
    expect(clients).toMatch(/name=redtail-postgres-fetch/);
    expect((await proc.stop()).code).toBe(0);
    // `redtail verify` reads the master over TLS with the same settings, here from the environment.
    const verify = await run(
      process.execPath,
      [
        join(repoRoot, 'bin', 'redtail.js'),
        'verify',
        '--master',
        m.tlsUrl(),
        '--postgres',
        `${PG_URL}?schema=${schema}`,
        '--timeout',
        '30',
      ],
      {
        env: {
          ...process.env,
          REDTAIL_TLS_CA: f.ca,
          REDTAIL_TLS_CERT: f.clientCert,
          REDTAIL_TLS_KEY: f.clientKey,
        },
      },
    );
    expect(verify.stdout).toMatch(/verify: \d+ keys on the master, 0 differences/);
  });
});
