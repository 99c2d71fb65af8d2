import { coreCases } from './propagationCases.js';
import { propagationSuite } from './propagationSuite.js';

/**
 * A real Valkey 8.1 master. It has no write command Redis 7.0 lacks (see coverage.test.ts), so the 7.0 cases are the
 * whole suite; where Valkey sends something else (UNLINK under its lazyfree defaults, SPOP and XREADGROUP as Redis
 * 7.2 does) the cases say so.
 */
await propagationSuite({ version: 'valkey-8.1', cases: coreCases });
