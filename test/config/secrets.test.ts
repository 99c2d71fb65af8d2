import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveKafkaSinkConfig } from '../../sinks/kafka/config.js';
import { parsePostgresSpec, pgConnectionString } from '../../sinks/postgres/config.js';
import { ConfigError, loadConfig, loadConfigWithOrigins } from '../../src/config/Config.js';
import { scrub } from '../../src/observe/redact.js';

const dir = mkdtempSync(join(tmpdir(), 'redtail-secrets-cfg-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('passwords from the environment and files', () => {
  it('REDTAIL_MASTER_PASSWORD_FILE: one trailing newline stripped, the origin named, the value scrubbed', () => {
    const pw = `file pw ${Date.now()}`;
    const f = file('master', `${pw}\n\n`);
    const { config, origins } = loadConfigWithOrigins({
      env: { REDTAIL_MASTER_PASSWORD_FILE: f },
      flags: { master: ['redis://127.0.0.1:1'] },
    });
    expect(config.masterPassword).toBe(`${pw}\n`);
    expect(origins.get('masterPassword')).toBe(`env REDTAIL_MASTER_PASSWORD_FILE (${f})`);
    expect(scrub(`x ${pw}\n y`)).toBe('x *** y');
  });

  it('refuses a password given twice, naming both sources and not the password', () => {
    const run = () =>
      loadConfig({
        env: { REDTAIL_MASTER_PASSWORD: 'envpassword' },
        flags: { master: ['redis://:urlpassword@h:1'] },
      });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(
      /master: redis:\/\/:\*\*\*@h:1 holds a password and env REDTAIL_MASTER_PASSWORD gives another/,
    );
    const both = () =>
      loadConfig({
        env: { REDTAIL_SENTINEL_PASSWORD: 'a1234', REDTAIL_SENTINEL_PASSWORD_FILE: file('s', 'b1234') },
        flags: { sentinels: ['h:1'], masterName: 'm' },
      });
    expect(both).toThrow(
      /sentinel password is given 2 times \(REDTAIL_SENTINEL_PASSWORD, REDTAIL_SENTINEL_PASSWORD_FILE\)/,
    );
  });

  it('an empty or missing password file is an error naming the variable', () => {
    expect(() =>
      loadConfig({ env: { REDTAIL_POSTGRES_PASSWORD_FILE: file('empty', '\n') }, flags: {} }),
    ).toThrow(/REDTAIL_POSTGRES_PASSWORD_FILE: the password file .* is empty/);
    expect(() => loadConfig({ env: { REDTAIL_KAFKA_PASSWORD_FILE: join(dir, 'nope') }, flags: {} })).toThrow(
      /REDTAIL_KAFKA_PASSWORD_FILE: cannot read the password file .*ENOENT/,
    );
  });

  it('sinkOptions.postgres.passwordFile reaches pg; kafka password fills the spec user', () => {
    const cfgFile = file(
      'c.json',
      JSON.stringify({
        sinks: ['postgres://app@db:5432/x?schema=s', 'kafka://svc@b:9092?sasl=scram-sha-256'],
        sinkOptions: { postgres: { passwordFile: file('pg', 'pg/pw@1\n') } },
      }),
    );
    const c = loadConfig({ file: cfgFile, env: { REDTAIL_KAFKA_PASSWORD: 'kafkapw' }, flags: {} });
    const pg = parsePostgresSpec(c.sinks[0]!, c.sinkOptions.postgres);
    expect(new URL(pgConnectionString(pg)).password).toBe(encodeURIComponent('pg/pw@1'));
    expect(resolveKafkaSinkConfig(c.sinks[1], c.sinkOptions.kafka).sasl).toEqual({
      mechanism: 'scram-sha-256',
      username: 'svc',
      password: 'kafkapw',
    });
  });

  it('a sentinel address may be a URL holding the sentinels password', () => {
    const c = loadConfig({
      env: {},
      flags: { sentinels: ['redis://:sentpw99@10.0.0.5:26379'], masterName: 'm' },
    });
    expect(c.sentinel?.addresses).toEqual(['10.0.0.5:26379']);
    expect(c.sentinel?.password).toBe('sentpw99');
  });
});
