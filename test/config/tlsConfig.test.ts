import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/Config.js';
import { repoRoot } from '../harness/RedtailProcess.js';

const dir = mkdtempSync(join(tmpdir(), 'redtail-tlscfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(content: unknown): string {
  const path = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

describe('TLS settings', () => {
  it('combine field by field: flags over environment over file', () => {
    const c = loadConfig({
      file: file({
        master: 'rediss://m:6380',
        tls: {
          caFile: '/file/ca.pem',
          servername: 'file.example',
          certFile: '/file/c.pem',
          keyFile: '/file/k.pem',
        },
      }),
      env: {
        REDTAIL_TLS_SERVERNAME: 'env.example',
        REDTAIL_TLS_CERT: '/env/c.pem',
        REDTAIL_TLS_KEY: '/env/k.pem',
      },
      flags: { tls: { servername: 'flag.example', caFile: undefined, insecure: undefined } },
    });
    expect(c.tls).toEqual({
      caFile: '/file/ca.pem',
      servername: 'flag.example',
      certFile: '/env/c.pem',
      keyFile: '/env/k.pem',
    });
    expect(loadConfig({ env: { REDTAIL_TLS_INSECURE: 'true' }, flags: {} }).tls).toEqual({ insecure: true });
    expect(loadConfig({ env: {}, flags: {} }).tls).toEqual({});
  });

  it('sentinel.tls comes from the file, REDTAIL_SENTINEL_TLS or --sentinel-tls', () => {
    const f = file({ sentinel: { addresses: ['s:26379'], masterName: 'mymaster', tls: true } });
    expect(loadConfig({ file: f, env: {}, flags: {} }).sentinel?.tls).toBe(true);
    // Sentinels named on the command line replace the file's list; its tls carries over unless overridden.
    expect(
      loadConfig({ file: f, env: {}, flags: { sentinels: ['t:26379'], masterName: 'm' } }).sentinel,
    ).toEqual({
      addresses: ['t:26379'],
      masterName: 'm',
      tls: true,
    });
    expect(loadConfig({ file: f, env: { REDTAIL_SENTINEL_TLS: 'no' }, flags: {} }).sentinel?.tls).toBe(false);
    expect(
      loadConfig({
        env: { REDTAIL_SENTINELS: 's:1', REDTAIL_MASTER_NAME: 'm' },
        flags: { sentinelTls: true },
      }).sentinel?.tls,
    ).toBe(true);
  });

  it('rejects half a client certificate and malformed values, and the schema agrees', () => {
    const validate = new Ajv().compile(
      JSON.parse(readFileSync(join(repoRoot, 'config/config.schema.json'), 'utf8')),
    );
    expect(() => loadConfig({ env: { REDTAIL_TLS_CERT: '/c.pem' }, flags: {} })).toThrow(
      /both tls.certFile and tls.keyFile/,
    );
    expect(() => loadConfig({ env: { REDTAIL_TLS_INSECURE: 'maybe' }, flags: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ file: file({ tls: { insecure: 'yes' } }), env: {}, flags: {} })).toThrow(
      /tls.insecure must be true or false/,
    );
    expect(validate({ tls: { insecure: 'yes' } })).toBe(false);
    expect(() => loadConfig({ file: file({ tls: 'on' }), env: {}, flags: {} })).toThrow(
      /tls must be an object/,
    );
    expect(validate({ tls: 'on' })).toBe(false);
    const full = {
      master: 'rediss://:pw@redis.example:6380',
      tls: { caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem', servername: 'r', insecure: false },
      sentinel: { addresses: ['s:26379'], masterName: 'm', tls: true },
      link: { connectTimeoutMs: 5000 },
    };
    expect(validate(full)).toBe(true);
    expect(loadConfig({ file: file(full), env: {}, flags: {} }).link.connectTimeoutMs).toBe(5000);
  });
});
