/** Bytes and ceilings of the RESP grammar a master speaks to its replicas (Redis networking.c). */
export const CR = 13;
export const LF = 10;
export const STAR = 42;
export const DOLLAR = 36;
/** A bulk string longer than Redis's own `proto-max-bulk-len` ceiling (512 MB default, 4 GB hard) is corrupt. */
export const MAX_BULK = 4 * 1024 * 1024 * 1024;
/** Redis rejects multibulk headers above 1024*1024*1024 arguments as well. */
export const MAX_ARGS = 1024 * 1024 * 1024;
/** Like Redis's PROTO_INLINE_MAX_SIZE: a line this long without a newline is not a master speaking RESP. */
export const MAX_INLINE = 64 * 1024;
