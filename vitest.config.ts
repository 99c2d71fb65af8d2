import { defineConfig } from 'vitest/config';

// Integration tests start real redis-server, PostgreSQL and Kafka processes; two cores are shared by all of them,
// so files run with limited parallelism and generous timeouts (timeouts are failure detectors, never assertions).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: 'forks',
  },
});
