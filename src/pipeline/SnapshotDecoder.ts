import type { ChangeEvent } from '../events/ChangeEvent.js';

/** What a decoded snapshot reports when it ends; it lands in the `snapshot-end` control event. */
export interface SnapshotSummary {
  keys: number;
  bytes: number;
  /** Keys per database. */
  keysPerDb?: Record<string, number>;
  /** Decoder-specific facts (RDB version, checksum state, ...), copied into the event. */
  [fact: string]: unknown;
}

/** Turns the snapshot's bytes into snapshot events, incrementally. */
export interface SnapshotDecoder {
  write(chunk: Buffer): void;
  end(): SnapshotSummary;
}

export interface SnapshotContext {
  replid: string;
  offset: number;
  /** Receives the events decoded so far and the snapshot bytes they came from; called synchronously from `write`. */
  emit(events: ChangeEvent[], bytes: number): void;
}

export type SnapshotDecoderFactory = (ctx: SnapshotContext) => SnapshotDecoder;

/** Consumes a snapshot without decoding it (counts its bytes), for setups that only want the change stream. */
export const skipSnapshot: SnapshotDecoderFactory = () => {
  let bytes = 0;
  return {
    write(chunk) {
      bytes += chunk.length;
    },
    end() {
      return { keys: 0, bytes };
    },
  };
};
