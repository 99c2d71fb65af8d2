import type { Case } from './propagationSuite.js';

/**
 * Vector sets (Redis 8.0's built-in vectorset module): VADD, VREM and VSETATTR are propagated verbatim (verified on
 * 8.0.2). Their values are a module type events do not model, so they stay unknown `command` events carrying every
 * argument (CommandTable.ts, handledAsUnknown); nothing is dropped.
 */
const unknown = (...args: string[]) => ({
  op: 'command',
  key: undefined,
  type: undefined,
  unknown: true,
  args,
});

export const vectorSetCases: Case[] = [
  {
    cmd: 'vadd',
    run: [['VADD', 'v', 'VALUES', 3, '1', '2', '3', 'e1', 'SETATTR', '{"a":1}']],
    via: ['vadd'],
    expect: () => [unknown('VADD', 'v', 'VALUES', '3', '1', '2', '3', 'e1', 'SETATTR', '{"a":1}')],
  },
  {
    cmd: 'vsetattr',
    setup: [['VADD', 'v', 'VALUES', 2, '1', '2', 'e1']],
    run: [['VSETATTR', 'v', 'e1', '{"b":2}']],
    via: ['vsetattr'],
    expect: () => [unknown('VSETATTR', 'v', 'e1', '{"b":2}')],
  },
  {
    cmd: 'vrem',
    setup: [['VADD', 'v', 'VALUES', 2, '1', '2', 'e1']],
    run: [
      ['VREM', 'v', 'e1'],
      ['VREM', 'v', 'e1'],
    ],
    // The second one removed nothing and is not propagated.
    via: ['vrem'],
    expect: () => [unknown('VREM', 'v', 'e1')],
  },
];
