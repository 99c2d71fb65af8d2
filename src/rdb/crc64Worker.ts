import { parentPort, workerData } from 'node:worker_threads';
import { Crc64 } from './crc64.js';

/**
 * Worker side of Crc64Thread: receives the file's chunks in order (as slots of the shared ring) and CRCs all of them but the last 8 bytes seen so
 * far (the trailer Redis appends holds the CRC of everything before it); `{ end }` asks for the result: the
 * register, how many bytes it covers, and the 8 bytes held back.
 */
const port = parentPort;
if (port === null) throw new Error('crc64Worker runs as a worker thread');
const ring = new Uint8Array(workerData as SharedArrayBuffer);

const crc = new Crc64();
let covered = 0;
let carry = new Uint8Array(0);

port.on('message', (msg: { at: number; length: number } | { end: true }) => {
  if ('at' in msg) {
    add(ring.subarray(msg.at, msg.at + msg.length));
    // The slot is free again once its bytes are CRCed.
    port.postMessage(msg.at);
    return;
  }
  port.postMessage({ covered, lo: crc.lo, hi: crc.hi, trailer: carry });
});

/** CRCs the stream up to 8 bytes before its current end; those 8 wait in `carry` (they may be the trailer). */
function add(msg: Uint8Array): void {
  if (msg.length >= 8) {
    crc.update(carry);
    covered += carry.length;
    crc.update(msg, 0, msg.length - 8);
    covered += msg.length - 8;
    carry = msg.slice(msg.length - 8);
    return;
  }
  const both = new Uint8Array(carry.length + msg.length);
  both.set(carry);
  both.set(msg, carry.length);
  const keep = Math.min(8, both.length);
  crc.update(both, 0, both.length - keep);
  covered += both.length - keep;
  carry = both.slice(both.length - keep);
}
