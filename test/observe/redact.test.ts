import { describe, expect, it } from 'vitest';
import {
  clearSecrets,
  displayEndpoint,
  MASK,
  redactValue,
  registerSecret,
  scrub,
  secretsInEndpoint,
} from '../../src/observe/redact.js';

describe('displayEndpoint', () => {
  // Each spec with the secrets it holds; the display form must hold none of them and keep everything else.
  const cases: [string, string[]][] = [
    ['redis://:m4sterPw@10.0.0.1:6379', ['m4sterPw']],
    ['rediss://app:tls%40Pw@redis:6380', ['tls@Pw', 'tls%40Pw']],
    [
      'postgres://pg:pgUserPw@db:5432/x?schema=s&password=pgParamPw&sslpassword=keyPw',
      ['pgUserPw', 'pgParamPw', 'keyPw'],
    ],
    [`postgres://pg@db/x?master=${encodeURIComponent('redis://:nestedPw@m:6379')}`, ['nestedPw']],
    ['kafka://user:saslPw@b1:9092,b2:9092?sasl=scram-sha-512', ['saslPw']],
    ['kafka://b1:9092?sasl.password=paramSaslPw&sasl=plain', ['paramSaslPw']],
    ['redis://:p@ss@word@h:1', ['p@ss@word']],
    ['redis://:notAUrl@h:1/2?x', ['notAUrl']],
  ];
  for (const [spec, secrets] of cases)
    it(`masks ${spec.replace(/:\/\/.*/, '://…')} (${secrets[0]})`, () => {
      const shown = displayEndpoint(spec);
      for (const s of secrets) expect(shown).not.toContain(s);
      expect(shown).toContain(MASK);
      // Only secrets go: with them masked in the input too, the display form is the input.
      let masked = spec;
      for (const s of secretsInEndpoint(spec))
        masked = masked.split(encodeURIComponent(s)).join(MASK).split(s).join(MASK);
      expect(shown).toBe(displayEndpoint(masked));
      expect(secretsInEndpoint(spec)).toEqual(expect.arrayContaining([secrets[0]]));
    });

  it('leaves user names, hosts and non-URL specs alone', () => {
    for (const spec of [
      'stdout',
      'file:/var/lib/x.ndjson',
      '127.0.0.1:26379',
      'kafka://b:9092?topic=t',
      'postgres://app@db/x',
    ])
      expect(displayEndpoint(spec)).toBe(spec);
    expect(displayEndpoint('postgres://app:pw@db/x')).toMatch(/^postgres:\/\/app:\*\*\*@db\/x$/);
  });

  it('redacts configuration values by field name and URL', () => {
    const shown = JSON.stringify(
      redactValue({
        sentinel: { password: 'sentinelPw', passwordFile: '/run/secrets/s' },
        sinks: ['kafka://u:kPw@b:1'],
        sinkOptions: { kafka: { sasl: { mechanism: 'plain', username: 'u', password: 'saslOptPw' } } },
      }),
    );
    for (const s of ['sentinelPw', 'kPw', 'saslOptPw']) expect(shown).not.toContain(s);
    expect(shown).toContain('/run/secrets/s');
    expect(shown).toContain('"username":"u"');
  });
});

describe('scrub', () => {
  it('removes registered secrets in raw, URL-encoded and JSON-escaped forms', () => {
    clearSecrets();
    const pw = 'we"ird\\p@ss word';
    registerSecret(pw);
    registerSecret('ab'); // too short to scrub from free text
    const text = [pw, encodeURIComponent(pw), JSON.stringify({ err: `auth ${pw}` }), 'ab'].join(' | ');
    const out = scrub(text);
    expect(out).not.toContain('p@ss');
    expect(out).not.toContain('p%40ss');
    expect(out.split(MASK).length - 1).toBe(3);
    expect(out.endsWith('| ab')).toBe(true);
    clearSecrets();
  });
});
