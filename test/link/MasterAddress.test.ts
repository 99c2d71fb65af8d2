import { describe, expect, it } from 'vitest';
import { describeMaster, parseMasterUrl } from '../../src/link/MasterAddress.js';
import { defaultTls, type MasterTls } from '../../src/link/tls.js';

describe('parseMasterUrl', () => {
  it('reads host, port, user and password (percent-decoded)', () => {
    expect(parseMasterUrl('redis://tail:p%40ss@10.0.0.1:7000')).toEqual({
      host: '10.0.0.1',
      port: 7000,
      username: 'tail',
      password: 'p@ss',
      tls: null,
    });
    expect(parseMasterUrl('redis://:pw@localhost')).toEqual({
      host: 'localhost',
      port: 6379,
      password: 'pw',
      tls: null,
    });
    expect(describeMaster(parseMasterUrl('redis://[::1]:6380'))).toBe('[::1]:6380');
  });

  it('rediss:// dials with TLS: the configured settings, else system CAs with verification', () => {
    expect(parseMasterUrl('rediss://tail:pw@redis.example.com:6380')).toEqual({
      host: 'redis.example.com',
      port: 6380,
      username: 'tail',
      password: 'pw',
      tls: defaultTls,
    });
    expect(defaultTls).toEqual({ insecure: false });
    const settings: MasterTls = {
      insecure: false,
      ca: Buffer.from('pem'),
      caFile: '/ca.pem',
      servername: 'x',
    };
    expect(parseMasterUrl('rediss://10.0.0.1:6380', settings).tls).toBe(settings);
    // The settings apply to rediss:// only; redis:// stays plaintext whatever is configured.
    expect(parseMasterUrl('redis://10.0.0.1:6379', settings).tls).toBeNull();
    // Sentinel takes only the scheme and credentials from the URL; its host may just name the master.
    expect(parseMasterUrl('rediss://:pw@mymaster')).toMatchObject({ password: 'pw', tls: defaultTls });
  });

  it('rejects what it cannot honour, saying why', () => {
    expect(() => parseMasterUrl('http://x')).toThrow(/scheme must be redis:\/\//);
    expect(() => parseMasterUrl('redis://x:6379/2')).toThrow(/every database/);
    expect(() => parseMasterUrl('rediss://x:6379/0')).toThrow(/every database/);
    expect(() => parseMasterUrl('not a url')).toThrow(/invalid master URL/);
  });
});
