/**
 * Runs a server binary from a newer Debian release on this (older) Debian machine, without installing anything:
 * the package and the shared libraries it needs are downloaded from deb.debian.org, checked against the suite's
 * signed InRelease (gpgv + the machine's debian-archive-keyring), unpacked with `dpkg-deb -x` into a private tree,
 * and started through that tree's own dynamic loader (`ld-linux-x86-64.so.2 --library-path ...`), so the binary
 * gets the glibc it was built for while the machine keeps its own.
 *
 * This is how the test matrix gets Redis 8.0 and Valkey 8.1 (Debian 13 "trixie") on a Debian 12 machine.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MIRROR = 'http://deb.debian.org/debian';
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface DebianBinarySpec {
  suite: string;
  /** The package holding the executable (e.g. redis-tools, whose redis-check-rdb is the server binary). */
  package: string;
  /** The executable inside the package. */
  file: string;
  /**
   * The name it must run under: Redis and Valkey pick their mode (server, sentinel, check-rdb) from argv[0], and
   * the loader passes the path it was given as argv[0].
   */
  runAs: string;
}

interface Stanza {
  name: string;
  version: string;
  filename: string;
  sha256: string;
  depends: string[];
}

/**
 * Unpacks `spec` (and the libraries its package depends on) into `dir` unless a previous run did, and writes
 * `dir/<runAs>`, a shell script that runs it. Returns that script's path. Concurrent callers are safe: the tree is
 * built in a temp dir and renamed into place.
 */
export async function debianBinary(spec: DebianBinarySpec, dir: string): Promise<string> {
  const launcher = join(dir, spec.runAs);
  if (existsSync(launcher)) return launcher;
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(`Debian amd64 packages need linux/x64; this is ${process.platform}/${process.arch}`);
  for (const tool of ['gpgv', 'dpkg-deb', 'xz'])
    if (!(await succeeds(tool, ['--version'])))
      throw new Error(
        `${tool} is not installed (Debian: apt-get install ${tool === 'xz' ? 'xz-utils' : tool === 'gpgv' ? 'gpgv' : 'dpkg'})`,
      );
  if (!existsSync(KEYRING)) throw new Error(`${KEYRING} is missing (apt-get install debian-archive-keyring)`);

  const index = await packageIndex(spec.suite);
  const wanted = closure(index, spec.package);
  mkdirSync(dir, { recursive: true });
  // Each build gets its own tree and only the launcher is renamed into place (atomically), so concurrent workers
  // never pull a tree from under each other; a loser's tree is simply unused.
  const tree = join(dir, `tree-${process.pid}-${Date.now()}`);
  const root = join(tree, 'root');
  mkdirSync(root, { recursive: true });
  try {
    for (const p of wanted) {
      const deb = await download(`${MIRROR}/${p.filename}`);
      const sum = createHash('sha256').update(deb).digest('hex');
      if (sum !== p.sha256)
        throw new Error(`${p.filename}: sha256 ${sum}, the signed index says ${p.sha256}`);
      const file = join(tree, `${p.name}.deb`);
      writeFileSync(file, deb);
      await run('dpkg-deb', ['-x', file, root]);
      rmSync(file);
    }
  } catch (err) {
    rmSync(tree, { recursive: true, force: true });
    throw err;
  }
  const libs = ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu'].map((l) => join(root, l)).join(':');
  const loader = join(root, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
  mkdirSync(join(root, 'redtail-bin'));
  const binary = join(root, 'redtail-bin', spec.runAs);
  renameSync(join(root, spec.file), binary);
  const tmp = join(tree, spec.runAs);
  writeFileSync(tmp, `#!/bin/sh\nexec '${loader}' --library-path '${libs}' '${binary}' "$@"\n`, {
    mode: 0o755,
  });
  renameSync(tmp, launcher);
  return launcher;
}

const indexes = new Map<string, Promise<Map<string, Stanza>>>();

/** The suite's main/binary-amd64 Packages index, verified through the signed InRelease. */
function packageIndex(suite: string): Promise<Map<string, Stanza>> {
  let p = indexes.get(suite);
  if (!p) {
    p = loadIndex(suite);
    indexes.set(suite, p);
  }
  return p;
}

async function loadIndex(suite: string): Promise<Map<string, Stanza>> {
  const inRelease = await download(`${MIRROR}/dists/${suite}/InRelease`);
  const verified = await run('gpgv', ['--keyring', KEYRING, '--output', '-', '-'], inRelease);
  const line = verified
    .toString('utf8')
    .split('\n')
    .find((l) => / main\/binary-amd64\/Packages\.xz$/.test(l) && /^ [0-9a-f]{64} /.test(l));
  if (!line) throw new Error(`${suite} InRelease lists no sha256 for main/binary-amd64/Packages.xz`);
  const expected = line.trim().split(/\s+/)[0]!;
  const xz = await download(`${MIRROR}/dists/${suite}/main/binary-amd64/Packages.xz`);
  const sum = createHash('sha256').update(xz).digest('hex');
  if (sum !== expected) throw new Error(`${suite} Packages.xz: sha256 ${sum}, InRelease says ${expected}`);
  const text = (await run('xz', ['-dc'], xz)).toString('utf8');
  const out = new Map<string, Stanza>();
  for (const block of text.split('\n\n')) {
    const field = (f: string) => new RegExp(`^${f}: (.*)$`, 'm').exec(block)?.[1];
    const name = field('Package');
    const filename = field('Filename');
    const sha256 = field('SHA256');
    if (!name || !filename || !sha256) continue;
    const depends = [field('Pre-Depends'), field('Depends')]
      .filter((d): d is string => d !== undefined)
      .flatMap((d) => d.split(','))
      // First alternative, without version constraint or architecture qualifier.
      .map(
        (d) =>
          d
            .split('|')[0]!
            .trim()
            .split(/[\s(:]/)[0]!,
      )
      .filter((d) => d.length > 0);
    out.set(name, { name, version: field('Version') ?? '', filename, sha256, depends });
  }
  return out;
}

/**
 * The package and the shared-library packages it needs, transitively. Only `lib*` dependencies are followed:
 * the others (adduser, the -tools/-server split's scripts) are not needed to run the executable.
 */
function closure(index: Map<string, Stanza>, root: string): Stanza[] {
  const seen = new Map<string, Stanza>();
  const todo = [root];
  while (todo.length > 0) {
    const name = todo.pop()!;
    if (seen.has(name)) continue;
    const s = index.get(name);
    if (!s) throw new Error(`package ${name} is not in the index`);
    seen.set(name, s);
    for (const d of s.depends) if (d.startsWith('lib') && !seen.has(d)) todo.push(d);
  }
  return [...seen.values()];
}

async function download(url: string): Promise<Buffer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

function succeeds(file: string, args: string[]): Promise<boolean> {
  return run(file, args).then(
    () => true,
    () => false,
  );
}

function run(file: string, args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((res, rej) => {
    const child = execFile(
      file,
      args,
      { encoding: 'buffer', timeout: 300_000, maxBuffer: 256 << 20 },
      (err, stdout, stderr) => {
        if (err)
          rej(new Error(`${file} ${args.join(' ')} failed: ${err.message} ${stderr.toString()}`.trim()));
        else res(stdout);
      },
    );
    if (input) child.stdin?.end(input);
  });
}
