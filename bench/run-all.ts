import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `npm run bench`: every benchmark in turn, each in its own process so that one's heap and servers never skew the
 * next. Each prints its own figures and its ratio against the reference it measures in the same run.
 */
const here = dirname(fileURLToPath(import.meta.url));
const benches = ['stream', 'rdb', 'kafka', 'postgres'];
let failed = 0;
for (const name of benches) {
  const file = join(here, `${name}.js`);
  if (!existsSync(file)) continue;
  process.stdout.write(`\n=== bench:${name}\n`);
  const r = spawnSync(process.execPath, [file], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    process.stdout.write(`bench:${name} failed (exit ${r.status ?? r.signal})\n`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
