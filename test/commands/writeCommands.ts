import type { Redis } from 'ioredis';

export interface WriteCommand {
  /** Lower-case, `container|sub` for subcommands. */
  name: string;
  first: number;
  last: number;
  step: number;
}

/**
 * Every command whose COMMAND INFO flags include `write`, with its (first, last, step) key positions. Subcommands
 * come from the tenth field of the reply (Redis 7.0+), e.g. `xgroup|create`, `function|load`.
 */
export async function writeCommands(r: Redis): Promise<WriteCommand[]> {
  const info = (await r.call('COMMAND', 'INFO')) as unknown[][];
  const out: WriteCommand[] = [];
  const walk = (c: unknown[]): void => {
    const flags = c[2] as string[];
    if (flags.includes('write'))
      out.push({
        name: String(c[0]).toLowerCase(),
        first: c[3] as number,
        last: c[4] as number,
        step: c[5] as number,
      });
    for (const sub of (c[9] as unknown[][] | undefined) ?? []) walk(sub);
  };
  for (const c of info) if (c) walk(c);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
