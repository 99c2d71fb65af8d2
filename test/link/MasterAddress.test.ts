import { describe, expect, it } from 'vitest';
import { describeMaster, parseMasterUrl } from '../../src/link/MasterAddress.js';

describe('parseMasterUrl', () => {
  it('reads host, port, user and password (percent-decoded)', () => {
    expect(parseMasterUrl('redis://tail:p%40ss@10.0.0.1:7000')).toEqual({
      host: '10.0.0.1',
      port: 7000,
      username: 'tail',
      password: 'p@ss',
      tls: false,
    });
    expect(parseMasterUrl('redis://:pw@localhost')).toEqual({
      host: 'localhost',
      port: 6379,
      password: 'pw',
      tls: false,
    });
    expect(describeMaster(parseMasterUrl('redis://[::1]:6380'))).toBe('[::1]:6380');
  });

  it('rejects what it cannot honour, saying why', () => {
    expect(() => parseMasterUrl('http://x')).toThrow(/scheme must be redis:\/\//);
    expect(() => parseMasterUrl('rediss://x:6379')).toThrow(/TLS/);
    expect(() => parseMasterUrl('redis://x:6379/2')).toThrow(/every database/);
    expect(() => parseMasterUrl('not a url')).toThrow(/invalid master URL/);
  });
});
