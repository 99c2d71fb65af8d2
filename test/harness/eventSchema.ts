import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';

const schema = JSON.parse(readFileSync(new URL('../../config/event.schema.json', import.meta.url), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

/**
 * Checks one event as a consumer receives it (parsed JSON) against the published schema, so every event the
 * integration tests see through the real binary is also a schema test.
 */
export function schemaProblem(json: unknown): string | null {
  return validate(json) ? null : `${ajv.errorsText(validate.errors)}: ${JSON.stringify(json).slice(0, 500)}`;
}
