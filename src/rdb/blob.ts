import { RdbFormatError } from './RdbFormatError.js';

/**
 * Runs a packed-blob decoder with the right error offsets: a blob that is a view of the input is addressed by its
 * own position; one that was LZF-decompressed has no file position, so errors point at its string's start.
 */
export function decodeBlob<T>(
  blob: Buffer,
  inputBuf: Buffer,
  inputBase: number,
  stringStart: number,
  fn: (base: number) => T,
): T {
  if (isViewOf(blob, inputBuf)) {
    return fn(inputBase + (blob.byteOffset - inputBuf.byteOffset));
  }
  try {
    return fn(stringStart);
  } catch (err) {
    if (err instanceof RdbFormatError)
      throw new RdbFormatError(stringStart, `${err.reason} (inside an LZF-compressed blob)`);
    throw err;
  }
}

/**
 * Whether `blob` lies inside `input`'s bytes. Small Buffers share Node's allocation pool, so the same underlying
 * ArrayBuffer alone does not prove it: the byte ranges must nest (pool slices never overlap).
 */
export function isViewOf(blob: Buffer, input: Buffer): boolean {
  return (
    blob.buffer === input.buffer &&
    blob.byteOffset >= input.byteOffset &&
    blob.byteOffset + blob.length <= input.byteOffset + input.length
  );
}
