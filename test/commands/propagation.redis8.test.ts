import { hashFieldExpiryCases, hashFieldExpiryConfig, hashFieldExpiryReset } from './hashFieldExpiryCases.js';
import { coreCases } from './propagationCases.js';
import { propagationSuite } from './propagationSuite.js';
import { vectorSetCases } from './vectorSetCases.js';

/**
 * A real Redis 8.0 master: every 7.0 case (they hold unchanged, except where propagationCases.ts says 7.2+), the
 * hash field expiry commands of 7.4/8.0 with fields really expiring, and the vector set commands.
 */
await propagationSuite({
  version: '8.0',
  cases: [...coreCases, ...hashFieldExpiryCases, ...vectorSetCases],
  config: hashFieldExpiryConfig,
  reset: hashFieldExpiryReset,
});
