import { coreCases } from './propagationCases.js';
import { propagationSuite } from './propagationSuite.js';

/**
 * Every write command of Redis 7.0 against a real 7.0 master (Debian's redis-server on PATH): what the master
 * propagates, normalized, must mean what the issued command did. The 8.0 and Valkey 8.1 suites are in
 * propagation.redis8.test.ts and propagation.valkey.test.ts.
 */
await propagationSuite({ version: '7.0', cases: coreCases });
