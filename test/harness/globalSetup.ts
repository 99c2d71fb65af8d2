import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableVersions } from './redisVersions.js';

/**
 * Tests that run the real `redtail` binary need dist/ to match the sources: build once per test run
 * (incremental, so an unchanged tree costs about a second). Type errors do not stop the emit and are reported by
 * `npm run lint`, which CI runs first; here they are only echoed.
 */
export default async function setup(): Promise<() => void> {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const stopKafka = kafkaTeardown(root);
  const r = spawnSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0)
    process.stderr.write(`tsc reported errors (dist/ was still emitted):\n${r.stdout}${r.stderr}`);
  // Fetch and unpack every Redis version of the matrix once, before the workers start asking for them at once.
  await availableVersions();
  return stopKafka;
}

/**
 * Without KAFKA_BROKERS (a targeted `npx vitest run`, not scripts/test.sh), the first Kafka test starts the
 * scripts/kafka.sh broker of this TMPDIR (test/harness/kafka.ts). A run that started it stops it at the end: with a
 * fresh TMPDIR per run, each run's broker was otherwise left behind, a JVM apiece loading the machine.
 */
function kafkaTeardown(root: string): () => void {
  const script = join(root, 'scripts', 'kafka.sh');
  const running = () => spawnSync(script, ['status'], { stdio: 'ignore' }).status === 0;
  if (process.env.KAFKA_BROKERS || running()) return () => {};
  return () => {
    if (running()) spawnSync(script, ['stop'], { stdio: ['ignore', 'ignore', 'inherit'] });
  };
}
