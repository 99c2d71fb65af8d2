/**
 * Real redis-server binaries of several versions, for running tests against a matrix of masters.
 *
 * `7.0` is Debian's redis-server on PATH. `8.0` and `valkey-8.1` are Debian 13's packages, run through their own
 * loader (debianPackages.ts). 2.8 and 6.2 come from `embedded-redis` jars on Maven Central, which bundle
 * Linux x86_64 redis-server binaries: the jar is fetched with `mvn dependency:copy` (so it lands in ~/.m2 like any
 * Maven artifact), the binary is extracted once into `~/.cache/redtail/redis/<version>/redis-server` (to a temp file,
 * then renamed, so concurrent workers never see half a binary) and checked with `--version`.
 *
 * test/redis-versions/pom.xml lists the same jars, for warming ~/.m2 ahead of time (`mvn -f ... dependency:resolve`).
 *
 * Overrides: `REDIS_SERVER_<major>_<minor>` (e.g. `REDIS_SERVER_6_2=/opt/redis-6.2/bin/redis-server`,
 * `REDIS_SERVER_VALKEY_8_1`) points a
 * version at a binary of your own; `REDTAIL_REDIS_CACHE` moves the cache dir.
 */
import { execFile } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { type DebianBinarySpec, debianBinary } from './debianPackages.js';

export const REDIS_VERSIONS = ['2.8', '6.2', '7.0', '8.0', 'valkey-8.1'] as const;
export type RedisVersion = (typeof REDIS_VERSIONS)[number];

/** Where one version's binary comes from; the first source that yields a working binary wins. */
export type RedisSource =
  | { kind: 'path'; command: string }
  | {
      kind: 'maven';
      /** `groupId:artifactId:version` on Maven Central. */
      artifact: string;
      /** The Linux x86_64 redis-server inside the jar. */
      entry: string;
      /** The exact `redis_version` the binary must report. */
      exact: string;
    }
  | (DebianBinarySpec & {
      kind: 'debian';
      /** The upstream version the binary must report; Debian's stable updates keep it. */
      exact: string;
    });

export const REDIS_SOURCES: Record<RedisVersion, RedisSource[]> = {
  '2.8': [
    {
      kind: 'maven',
      artifact: 'it.ozimov:embedded-redis:0.7.3',
      entry: 'redis-server-2.8.19',
      exact: '2.8.19',
    },
  ],
  '6.2': [
    {
      kind: 'maven',
      artifact: 'org.signal:embedded-redis:0.8.3',
      entry: 'redis-server-6.2.7-linux-amd64',
      exact: '6.2.7',
    },
  ],
  '7.0': [
    { kind: 'path', command: 'redis-server' },
    {
      kind: 'maven',
      artifact: 'org.signal:embedded-redis:0.9.1',
      entry: 'redis-server-7.0.15-linux-amd64',
      exact: '7.0.15',
    },
  ],
  // Debian 13 packages the server inside its -tools package as `*-check-rdb`; argv[0] picks the server mode.
  '8.0': [
    {
      kind: 'debian',
      suite: 'trixie',
      package: 'redis-tools',
      file: 'usr/bin/redis-check-rdb',
      runAs: 'redis-server',
      exact: '8.0.2',
    },
  ],
  'valkey-8.1': [
    {
      kind: 'debian',
      suite: 'trixie',
      package: 'valkey-tools',
      file: 'usr/bin/valkey-check-rdb',
      runAs: 'valkey-server',
      exact: '8.1.1',
    },
  ],
};

export type RedisBinaryInfo =
  | { version: RedisVersion; path: string; exact: string; source: string }
  | { version: RedisVersion; path: null; reason: string };

export function redisCacheDir(): string {
  return process.env.REDTAIL_REDIS_CACHE ?? join(homedir(), '.cache', 'redtail', 'redis');
}

const resolved = new Map<RedisVersion, Promise<RedisBinaryInfo>>();

/** A path to a working redis-server of `version`, or null (with the reason logged) when this machine cannot have one. */
export async function redisBinary(version: RedisVersion): Promise<string | null> {
  const info = await redisBinaryInfo(version);
  return info.path;
}

/** Like `redisBinary`, with the exact version reported by the binary, or the reason it could not be had. */
export function redisBinaryInfo(version: RedisVersion): Promise<RedisBinaryInfo> {
  let p = resolved.get(version);
  if (!p) {
    p = resolve(version);
    resolved.set(version, p);
  }
  return p;
}

/** The versions this machine can run (fetching and extracting the ones not cached yet). */
export async function availableVersions(): Promise<RedisVersion[]> {
  const infos = await Promise.all(REDIS_VERSIONS.map((v) => redisBinaryInfo(v)));
  return infos.filter((i) => i.path !== null).map((i) => i.version);
}

async function resolve(version: RedisVersion): Promise<RedisBinaryInfo> {
  const reasons: string[] = [];
  const override = process.env[`REDIS_SERVER_${version.replace(/[.-]/g, '_').toUpperCase()}`];
  const sources: RedisSource[] = override
    ? [{ kind: 'path', command: override }, ...REDIS_SOURCES[version]]
    : REDIS_SOURCES[version];
  for (const source of sources) {
    try {
      const found =
        source.kind === 'path'
          ? await fromPath(version, source.command)
          : source.kind === 'maven'
            ? await fromMaven(version, source)
            : await fromDebian(version, source);
      return { version, ...found };
    } catch (err) {
      reasons.push((err as Error).message);
    }
  }
  const reason = `no redis-server ${version} on this machine: ${reasons.join('; ')}`;
  console.warn(`[redisVersions] ${reason}`);
  return { version, path: null, reason };
}

async function fromPath(
  version: RedisVersion,
  command: string,
): Promise<{ path: string; exact: string; source: string }> {
  const path = command.includes('/') ? command : whichSync(command);
  if (!path) throw new Error(`${command} is not on PATH`);
  const exact = await reportedVersion(path);
  if (!matches(exact, version)) throw new Error(`${path} is redis ${exact}, not ${version}`);
  return { path, exact, source: path };
}

async function fromMaven(
  version: RedisVersion,
  source: Extract<RedisSource, { kind: 'maven' }>,
): Promise<{ path: string; exact: string; source: string }> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(
      `${source.artifact} bundles a Linux x86_64 binary; this is ${process.platform}/${process.arch}`,
    );
  const dir = join(redisCacheDir(), version);
  const target = join(dir, 'redis-server');
  const label = `${source.artifact}!/${source.entry}`;
  if (existsSync(target)) {
    try {
      const exact = await reportedVersion(target);
      if (exact === source.exact) return { path: target, exact, source: label };
    } catch {
      // a broken or stale cached binary: extract it again
    }
  }
  const jar = await fetchJar(source.artifact);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.redis-server.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(tmp, zipEntry(readFileSync(jar.path), source.entry), { mode: 0o755 });
    const exact = await reportedVersion(tmp);
    if (exact !== source.exact) throw new Error(`${label} reports redis ${exact}, expected ${source.exact}`);
    renameSync(tmp, target);
    return { path: target, exact, source: label };
  } finally {
    rmSync(tmp, { force: true });
    jar.cleanup();
  }
}

async function fromDebian(
  version: RedisVersion,
  source: Extract<RedisSource, { kind: 'debian' }>,
): Promise<{ path: string; exact: string; source: string }> {
  const label = `debian ${source.suite} ${source.package}:${source.file}`;
  const dir = join(redisCacheDir(), version);
  let path = await debianBinary(source, dir);
  let exact = await reportedVersion(path).catch(() => '');
  if (exact !== source.exact) {
    // A stale or broken tree (e.g. removed by hand): build it again once.
    rmSync(join(dir, source.runAs), { force: true });
    path = await debianBinary(source, dir);
    exact = await reportedVersion(path);
  }
  if (exact !== source.exact) throw new Error(`${label} reports ${exact}, expected ${source.exact}`);
  return { path, exact, source: label };
}

/** Fetches a jar through Maven (into ~/.m2 as usual) and copies it to a temp dir, whatever the local repo is. */
async function fetchJar(artifact: string): Promise<{ path: string; cleanup: () => void }> {
  const [group, name, ver] = artifact.split(':') as [string, string, string];
  const m2 = join(homedir(), '.m2', 'repository', ...group.split('.'), name, ver, `${name}-${ver}.jar`);
  if (existsSync(m2)) return { path: m2, cleanup: () => {} };
  if (!whichSync('mvn')) throw new Error(`${artifact} is not in ~/.m2 and mvn is not on PATH`);
  const out = mkdtempSync(join(tmpdir(), 'redtail-redis-jar-'));
  const cleanup = () => rmSync(out, { recursive: true, force: true });
  try {
    await run('mvn', [
      '-q',
      '-B',
      'dependency:copy',
      `-Dartifact=${artifact}`,
      `-DoutputDirectory=${out}`,
      '-Dtransitive=false',
    ]);
  } catch (err) {
    cleanup();
    throw new Error(`mvn could not fetch ${artifact}: ${(err as Error).message}`);
  }
  return { path: join(out, `${name}-${ver}.jar`), cleanup };
}

/** The `v=X.Y.Z` of `redis-server --version`. */
async function reportedVersion(binary: string): Promise<string> {
  accessSync(binary, constants.X_OK);
  const out = await run(binary, ['--version']);
  const m = /\bv=(\d+\.\d+\.\d+)/.exec(out);
  if (!m) throw new Error(`${binary} --version said ${JSON.stringify(out.trim())}`);
  return m[1]!;
}

function matches(exact: string, version: RedisVersion): boolean {
  return exact.startsWith(`${version.replace(/^valkey-/, '')}.`);
}

function whichSync(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, command);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    execFile(
      file,
      args,
      { encoding: 'utf8', timeout: 300_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) rej(new Error(`${file} ${args.join(' ')} failed: ${err.message} ${stdout}${stderr}`.trim()));
        else res(stdout);
      },
    );
  });
}

/** One file out of a zip (jar) archive: stored or deflated entries, no zip64 (the jars are a few MB). */
export function zipEntry(zip: Buffer, name: string): Buffer {
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory)');
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const entryName = zip.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (entryName !== name) continue;
    if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`corrupt zip local header for ${name}`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + compressed);
    const data = method === 0 ? Buffer.from(raw) : method === 8 ? inflateRawSync(raw) : null;
    if (!data) throw new Error(`${name}: unsupported zip compression method ${method}`);
    if (data.length !== size) throw new Error(`${name}: extracted ${data.length} bytes, expected ${size}`);
    return data;
  }
  throw new Error(`no ${name} in the archive`);
}
