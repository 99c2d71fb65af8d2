import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { expect } from 'vitest';
import { normalizeCommand } from '../../src/commands/normalize.js';
import type { CommandContext } from '../../src/commands/types.js';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { encodeEventLine } from '../../src/events/EventEncoder.js';

const schema = JSON.parse(readFileSync(new URL('../../config/event.schema.json', import.meta.url), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

/** Every event a test sees goes through here: encoded as a sink would, then checked against the schema. */
export function toValidJson(ev: ChangeEvent): Record<string, unknown> {
  const json = JSON.parse(encodeEventLine(ev)) as Record<string, unknown>;
  if (!validate(json)) {
    throw new Error(
      `event does not match config/event.schema.json: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(json)}`,
    );
  }
  return json;
}

export function validateJson(json: unknown): string | null {
  return validate(json) ? null : ajv.errorsText(validate.errors);
}

export const ctx: CommandContext = { db: 0, replid: 'a'.repeat(40), offset: 100, ts: 1_700_000_000_000 };

export function argv(...parts: (string | Buffer | number)[]): Buffer[] {
  return parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(String(p))));
}

/** Normalizes a command and returns its events as validated JSON. */
export function norm(
  parts: (string | Buffer | number)[],
  c: Partial<CommandContext> = {},
): Record<string, unknown>[] {
  return normalizeCommand(argv(...parts), { ...ctx, ...c }).map(toValidJson);
}

/** A number within a tolerance, for expiries computed from a clock. */
export class Near {
  constructor(
    readonly value: number,
    readonly tolerance: number,
  ) {}
}

/** Partial deep match: objects match on the listed fields, arrays element by element, Near within tolerance. */
export function mismatches(actual: unknown, expected: unknown, path = '$'): string[] {
  if (expected instanceof Near) {
    return typeof actual === 'number' && Math.abs(actual - expected.value) <= expected.tolerance
      ? []
      : [`${path}: ${JSON.stringify(actual)} not within ${expected.tolerance} of ${expected.value}`];
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length)
      return [`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    return expected.flatMap((e, i) => mismatches(actual[i], e, `${path}[${i}]`));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object')
      return [`${path}: expected an object, got ${JSON.stringify(actual)}`];
    return Object.entries(expected).flatMap(([k, e]) =>
      e === undefined
        ? k in (actual as object)
          ? [`${path}.${k}: expected absent, got ${JSON.stringify((actual as Record<string, unknown>)[k])}`]
          : []
        : mismatches((actual as Record<string, unknown>)[k], e, `${path}.${k}`),
    );
  }
  return Object.is(actual, expected)
    ? []
    : [`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
}

export function expectEvents(actual: unknown[], expected: unknown[]): void {
  expect(mismatches(actual, expected)).toEqual([]);
}
