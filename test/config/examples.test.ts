import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { runUsage } from '../../src/cli/runCommand.js';
import { defaults, loadConfig, type RedtailConfig } from '../../src/config/Config.js';
import { HttpEndpoint, parseListen } from '../../src/observe/HttpEndpoint.js';
import { silentLogger } from '../../src/observe/logger.js';
import { Metrics } from '../../src/observe/Metrics.js';
import { repoRoot } from '../harness/RedtailProcess.js';

/**
 * The Kubernetes and Compose examples cannot run here (no Docker, no cluster), so this checks everything they tell
 * redtail against redtail itself: flags against run's usage, each environment variable by loading the configuration
 * with it and seeing it take effect, the config file against the schema and the loader, probe paths against a real
 * HTTP endpoint, ports and paths against the Dockerfile and the mounted volumes.
 */

type Obj = Record<string, unknown>;
const read = (p: string) => readFileSync(join(repoRoot, p), 'utf8');
const yamlDocs = (p: string): Obj[] => parseAllDocuments(read(p)).map((d) => d.toJS() as Obj);

/** `--flag` names of `redtail run`, from its usage text (the options the binary documents and parses). */
const runFlags = new Set([...runUsage.matchAll(/^ {2}(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((m) => m[1]!));

/** The flags in an argument list (an option's value is skipped). */
function flagsIn(args: string[]): string[] {
  return args.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]!);
}

/** The Dockerfile's ENTRYPOINT, EXPOSEd ports, ENV and VOLUMEs. */
function dockerfile() {
  const text = read('Dockerfile').replace(/\\\n/g, ' ');
  const last = text.slice(text.lastIndexOf('\nFROM '));
  const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(last)![1]!) as string[];
  const expose = [...last.matchAll(/^EXPOSE (.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).map(Number));
  const env: Record<string, string> = {};
  for (const m of last.matchAll(/^ENV (.+)$/gm))
    for (const kv of m[1]!.matchAll(/(\w+)=(\S+)/g)) env[kv[1]!] = kv[2]!;
  const volumes = [...last.matchAll(/^VOLUME (.+)$/gm)].flatMap((m) => JSON.parse(m[1]!) as string[]);
  return { entrypoint, expose, env, volumes };
}

const scratch = mkdtempSync(join(tmpdir(), 'redtail-examples-'));

/**
 * Loads the configuration as redtail would with `env` (config and secret files mapped from their in-container paths
 * to copies in a scratch dir), so an unknown or invalid variable fails here like it would at start.
 */
function effectiveConfig(env: Record<string, string>, files: Record<string, string>): RedtailConfig {
  const mapped: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (files[v] !== undefined) {
      const local = join(scratch, v.replace(/\//g, '_'));
      writeFileSync(local, files[v]!);
      mapped[k] = local;
    } else mapped[k] = v;
  }
  return loadConfig({ env: mapped, flags: {} });
}

/** Each variable must change the effective configuration on its own: a misspelt name would not. */
function expectEachVariableTakesEffect(env: Record<string, string>, files: Record<string, string>): void {
  const base = JSON.stringify(loadConfig({ env: {}, flags: {} }));
  for (const [name, value] of Object.entries(env)) {
    expect(name, 'only REDTAIL_* variables configure redtail').toMatch(/^REDTAIL_/);
    const one = JSON.stringify(effectiveConfig({ [name]: value }, files));
    expect(one, `${name}=${value} has no effect on redtail's configuration`).not.toBe(base);
  }
}

let endpoint: HttpEndpoint;
let endpointUrl: string;
beforeAll(async () => {
  endpoint = new HttpEndpoint({
    listen: '127.0.0.1:0',
    metrics: new Metrics(),
    ready: () => [],
    logger: silentLogger(),
  });
  const addr = await endpoint.start();
  endpointUrl = `http://127.0.0.1:${addr.port}`;
});
afterAll(() => endpoint.stop());

/** The probe path is served by redtail's real endpoint (anything but 404). */
async function expectServed(path: string): Promise<void> {
  const res = await fetch(endpointUrl + path);
  expect(res.status, `${path} is not a path redtail serves`).not.toBe(404);
}

describe('Dockerfile', () => {
  it('runs `redtail run`, exposes the HTTP port it configures, and keeps the checkpoint in its volume', () => {
    const d = dockerfile();
    expect(d.entrypoint.slice(0, 2)).toEqual(['node', 'bin/redtail.js']);
    expect(existsSync(join(repoRoot, d.entrypoint[1]!))).toBe(true);
    expect(d.entrypoint[2]).toBe('run');
    expect(d.expose).toEqual([parseListen(d.env.REDTAIL_HTTP!).port]);
    const { NODE_ENV: _, ...redtailEnv } = d.env;
    expectEachVariableTakesEffect(redtailEnv, {});
    const checkpointDir = posix.dirname(d.env.REDTAIL_CHECKPOINT!);
    expect(d.volumes).toContain(checkpointDir);
  });
});

describe('config/kubernetes', () => {
  const docs = yamlDocs('config/kubernetes/redis-with-redtail.yaml');
  const byKind = (k: string) => docs.filter((d) => d.kind === k);
  const sts = byKind('StatefulSet')[0] as Obj;
  const pod = (sts.spec as Obj).template as Obj;
  const podSpec = pod.spec as Obj;
  const containers = podSpec.containers as Obj[];
  const redtail = containers.find((c) => c.name === 'redtail')!;
  const env = Object.fromEntries(
    (redtail.env as { name: string; value: string }[]).map((e) => [e.name, e.value]),
  );

  /** Files the pod sees: ConfigMap and Secret keys under their mount paths. */
  const files: Record<string, string> = {};
  const mounts = redtail.volumeMounts as { name: string; mountPath: string }[];
  const volumes = podSpec.volumes as Obj[];
  const claims = ((sts.spec as Obj).volumeClaimTemplates as Obj[]).map((c) => (c.metadata as Obj).name);
  for (const m of mounts) {
    const v = volumes.find((x) => x.name === m.name);
    if (!v) continue;
    const source = v.configMap
      ? byKind('ConfigMap').find((c) => (c.metadata as Obj).name === (v.configMap as Obj).name)
      : byKind('Secret').find((c) => (c.metadata as Obj).name === (v.secret as Obj).secretName);
    expect(source, `volume ${m.name} names a ConfigMap or Secret defined in the file`).toBeDefined();
    const data = (source!.data ?? source!.stringData) as Record<string, string>;
    for (const [k, text] of Object.entries(data)) files[posix.join(m.mountPath, k)] = text;
  }
  const underMount = (path: string) => mounts.some((m) => path.startsWith(`${m.mountPath}/`));

  it('passes only run flags redtail has, to the image whose entrypoint is `redtail run`', () => {
    expect(redtail.command, 'the image entrypoint must stay in charge').toBeUndefined();
    const flags = flagsIn(redtail.args as string[]);
    expect(flags.length).toBeGreaterThan(0);
    for (const f of flags) expect(runFlags, `${f} is not an option of redtail run`).toContain(f);
  });

  it('sets only environment variables that change the configuration, with files that exist in the pod', () => {
    for (const [k, v] of Object.entries(env))
      if (k.endsWith('_FILE') || k === 'REDTAIL_CONFIG')
        expect(files[v], `${k}=${v} is not a mounted file`).toBeDefined();
    expectEachVariableTakesEffect(env, files);
  });

  it('keeps a config file that the schema and the loader accept', () => {
    const file = files[env.REDTAIL_CONFIG!]!;
    const schema = JSON.parse(read('config/config.schema.json'));
    const validate = new Ajv({ strict: false }).compile(schema);
    expect(validate(JSON.parse(file)), JSON.stringify(validate.errors)).toBe(true);
    expect(effectiveConfig(env, files).sinks).toEqual(JSON.parse(file).sinks);
  });

  it('writes the checkpoint to a persistent volume and serves the probes on the configured port', async () => {
    const config = effectiveConfig(env, files);
    const stateMount = mounts.find((m) => config.checkpoint.startsWith(`${m.mountPath}/`));
    expect(stateMount, `checkpoint ${config.checkpoint} is on no mounted volume`).toBeDefined();
    expect(claims).toContain(stateMount!.name);
    const port = parseListen(config.http!).port;
    const ports = redtail.ports as { name: string; containerPort: number }[];
    expect(ports.map((p) => p.containerPort)).toEqual([port]);
    expect(dockerfile().expose).toContain(port);
    for (const probe of ['livenessProbe', 'readinessProbe']) {
      const get = (redtail[probe] as Obj).httpGet as { path: string; port: string | number };
      const target =
        typeof get.port === 'number' ? get.port : ports.find((p) => p.name === get.port)?.containerPort;
      expect(target, `${probe} port`).toBe(port);
      await expectServed(get.path);
    }
    expect((redtail.livenessProbe as Obj).httpGet).toMatchObject({ path: '/healthz' });
    expect((redtail.readinessProbe as Obj).httpGet).toMatchObject({ path: '/readyz' });
    const annotations = (pod.metadata as Obj).annotations as Record<string, string>;
    expect(Number(annotations['prometheus.io/port'])).toBe(port);
    await expectServed(annotations['prometheus.io/path']!);
    for (const p of Object.keys(files)) expect(underMount(p)).toBe(true);
  });

  it('gives the pod a grace period just above the drain timeout, and resource requests', () => {
    const config = effectiveConfig(env, files);
    const grace = Number(podSpec.terminationGracePeriodSeconds) * 1000;
    expect(config.shutdownTimeoutMs).not.toBe(defaults.shutdownTimeoutMs);
    expect(grace).toBeGreaterThan(config.shutdownTimeoutMs);
    expect(grace - config.shutdownTimeoutMs).toBeLessThanOrEqual(10_000);
    const req = (redtail.resources as Obj).requests as Obj;
    expect(req.cpu).toBeTruthy();
    expect(req.memory).toBeTruthy();
  });
});

describe('config/docker-compose.yml', () => {
  const compose = yamlDocs('config/docker-compose.yml')[0]!;
  const services = compose.services as Record<string, Obj>;
  const redtail = services.redtail!;
  const env = redtail.environment as Record<string, string>;
  const secretFiles: Record<string, string> = {};
  for (const [name, s] of Object.entries(compose.secrets as Record<string, { file: string }>)) {
    const local = join(repoRoot, 'config', s.file);
    expect(existsSync(local), `secret file ${s.file}`).toBe(true);
    secretFiles[`/run/secrets/${name}`] = readFileSync(local, 'utf8');
  }

  it('builds the image from the repository and passes only run flags', () => {
    expect(existsSync(join(repoRoot, 'config', redtail.build as string, 'Dockerfile'))).toBe(true);
    const flags = flagsIn(redtail.command as string[]);
    expect(flags.length).toBeGreaterThan(0);
    for (const f of flags) expect(runFlags, `${f} is not an option of redtail run`).toContain(f);
    for (const dep of redtail.depends_on as string[]) expect(Object.keys(services)).toContain(dep);
  });

  it('sets only environment variables that take effect, with secret files that are given to the service', () => {
    const given = (redtail.secrets as string[]).map((s) => `/run/secrets/${s}`);
    for (const [k, v] of Object.entries(env)) if (k.endsWith('_FILE')) expect(given).toContain(v);
    expectEachVariableTakesEffect(env, secretFiles);
  });

  it('publishes the HTTP port, keeps the checkpoint in a volume and waits longer than the drain timeout', async () => {
    const config = effectiveConfig(env, secretFiles);
    const port = parseListen(config.http!).port;
    expect(redtail.ports).toContain(`${port}:${port}`);
    expect(dockerfile().expose).toContain(port);
    const volume = (redtail.volumes as string[]).map((v) => v.split(':'));
    expect(
      volume.some(
        ([name, path]) => config.checkpoint.startsWith(`${path}/`) && name! in (compose.volumes as Obj),
      ),
    ).toBe(true);
    const grace = Number(/^(\d+)s$/.exec(redtail.stop_grace_period as string)![1]) * 1000;
    expect(grace).toBeGreaterThan(config.shutdownTimeoutMs);
    const probe = ((redtail.healthcheck as Obj).test as string[]).join(' ');
    const url = /http:\/\/127\.0\.0\.1:(\d+)(\/\w+)/.exec(probe)!;
    expect(Number(url[1])).toBe(port);
    await expectServed(url[2]!);
  });
});

describe('config/grafana', () => {
  it('is a dashboard whose queries name redtail metrics (their existence is checked against /metrics in test/observe)', () => {
    const dash = JSON.parse(read('config/grafana/redtail-dashboard.json'));
    const exprs: string[] = dash.panels.flatMap((p: { targets: { expr: string }[] }) =>
      p.targets.map((t) => t.expr),
    );
    expect(exprs.length).toBeGreaterThan(10);
    expect(exprs.every((e) => /redtail_|process_/.test(e))).toBe(true);
  });
});
