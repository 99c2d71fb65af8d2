/**
 * The arguments of one command as offsets into the buffers they arrived in. Framing records where each argument
 * is; a `Buffer` is only made for an argument somebody asks for as bytes (keys and values that go into events),
 * while names, options and numbers are compared and parsed in place. Most replicated commands carry their name plus
 * one or two arguments that are parsed (scores, times, counts), so this saves a Buffer object for each of those.
 */
export interface CommandArgs {
  readonly length: number;
  /** The buffer holding argument `i` (for in-place reads between `start(i)` and `end(i)`). */
  bufferOf(i: number): Buffer;
  start(i: number): number;
  end(i: number): number;
  /** Argument `i` as a Buffer (a view, not a copy: valid as long as the buffer it arrived in). */
  get(i: number): Buffer | undefined;
  /** All arguments as Buffers. */
  toArray(): Buffer[];
}

/** Arguments that are already Buffers (tests, callers outside the replication stream). */
export class BufferArgs implements CommandArgs {
  constructor(private readonly argv: Buffer[]) {}

  get length(): number {
    return this.argv.length;
  }

  bufferOf(i: number): Buffer {
    return this.argv[i]!;
  }

  start(_i: number): number {
    return 0;
  }

  end(i: number): number {
    return this.argv[i]!.length;
  }

  get(i: number): Buffer | undefined {
    return this.argv[i];
  }

  toArray(): Buffer[] {
    return this.argv;
  }
}

/**
 * The reader's reusable view: one per reader, refilled for every command, so a handler that keeps arguments past
 * its call must keep the Buffers `get`/`toArray` gave it (those stay valid), never the view.
 */
export class ArgsView implements CommandArgs {
  length = 0;
  private bufs: Buffer[] = [];
  private starts: number[] = [];
  private ends: number[] = [];
  private made: Array<Buffer | undefined> = [];

  /** Forgets the previous command. */
  clear(): void {
    // Buffers of the last command are released so a long-idle reader does not pin its last socket chunk.
    for (let i = 0; i < this.length; i++) {
      this.bufs[i] = EMPTY;
      this.made[i] = undefined;
    }
    this.length = 0;
  }

  push(buf: Buffer, start: number, end: number): void {
    const i = this.length++;
    this.bufs[i] = buf;
    this.starts[i] = start;
    this.ends[i] = end;
    this.made[i] = undefined;
  }

  bufferOf(i: number): Buffer {
    return this.bufs[i]!;
  }

  start(i: number): number {
    return this.starts[i]!;
  }

  end(i: number): number {
    return this.ends[i]!;
  }

  get(i: number): Buffer | undefined {
    if (i >= this.length) return undefined;
    let b = this.made[i];
    if (b === undefined) {
      b = this.bufs[i]!.subarray(this.starts[i], this.ends[i]);
      this.made[i] = b;
    }
    return b;
  }

  toArray(): Buffer[] {
    const out: Buffer[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.get(i)!;
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/** Case-insensitive comparison of argument `i` with a lower-case ASCII token, in place. */
export function argIs(args: CommandArgs, i: number, token: string): boolean {
  if (i >= args.length) return false;
  const s = args.start(i);
  const n = args.end(i) - s;
  if (n !== token.length) return false;
  const b = args.bufferOf(i);
  for (let k = 0; k < n; k++) {
    let c = b[s + k]!;
    if (c >= 65 && c <= 90) c += 32;
    if (c !== token.charCodeAt(k)) return false;
  }
  return true;
}

/** Argument `i` as latin1 text (one char per byte), without making a Buffer. */
export function argLatin1(args: CommandArgs, i: number): string {
  return args.bufferOf(i).toString('latin1', args.start(i), args.end(i));
}
