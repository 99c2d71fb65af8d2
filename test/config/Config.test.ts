import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { ConfigError, defaults, loadConfig } from '../../src/config/Config.js';
import { repoRoot } from '../harness/RedtailProcess.js';

const schema = JSON.parse(readFileSync(join(repoRoot, 'config/config.schema.json'), 'utf8'));
const example = join(repoRoot, 'config/redtail.example.json');

describe('configuration', () => {
  it('the example file satisfies the published schema and loads', () => {
    const validate = new Ajv({ allErrors: true }).compile(schema);
    const ok = validate(JSON.parse(readFileSync(example, 'utf8')));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    const c = loadConfig({ file: example, env: {}, flags: {} });
    expect(c.master).toBe('redis://:password@127.0.0.1:6379');
  });

  it('the schema rejects what loadConfig rejects', () => {
    const validate = new Ajv().compile(schema);
    expect(validate({ ack: 'sometimes' })).toBe(false);
    expect(() => loadConfig({ env: {}, flags: { ack: 'sometimes' as never } })).toThrow(ConfigError);
    expect(validate({ logLevel: 'loud' })).toBe(false);
    expect(() => loadConfig({ env: { REDTAIL_LOG_LEVEL: 'loud' }, flags: {} })).toThrow(/log level 'loud'/);
  });

  it('flags override the environment, which overrides the file, which overrides defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-cfg-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ master: 'redis://file:1', checkpoint: '/file', logLevel: 'warn' }));
    const c = loadConfig({
      file,
      env: {
        REDTAIL_MASTER: 'redis://env:2',
        REDTAIL_CHECKPOINT: '/env',
        REDTAIL_SINKS: 'stdout file:/tmp/x',
      },
      flags: { master: ['redis://flag:3'] },
    });
    expect(c.master).toBe('redis://flag:3');
    expect(c.checkpoint).toBe('/env');
    expect(c.logLevel).toBe('warn');
    expect(c.sinks).toEqual(['stdout', 'file:/tmp/x']);
    expect(c.pipeline).toEqual(defaults.pipeline);
  });

  it('names the file and the problem when the file is broken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-cfg-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{ "master": ');
    expect(() => loadConfig({ file, env: {}, flags: {} })).toThrow(
      new RegExp(`config file ${file} is not valid JSON`),
    );
    expect(() => loadConfig({ file: join(dir, 'missing.json'), env: {}, flags: {} })).toThrow(/ENOENT/);
  });
});
