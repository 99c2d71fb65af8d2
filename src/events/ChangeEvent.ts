/**
 * The internal shape of a change event. Keys, values and arguments stay `Buffer`s until a sink encodes them
 * (see `EventEncoder`), so binary data is never mangled and no string is built that nobody reads.
 */

/** Where an event sits in the master's replication stream. */
export interface EventSource {
  /** Replication id of the master history the offset belongs to. */
  replid: string;
  /** Replication offset at the end of the command that produced the event (for snapshot events: the +FULLRESYNC offset). */
  offset: number;
  /** Orders the several events one command (or one snapshot) produces; 0 for the first. */
  seq: number;
  /** Shared by every event of one MULTI/EXEC transaction. */
  txn?: string;
  /** True for events produced from the RDB snapshot. */
  snapshot: boolean;
}

/** Values a payload field can hold; Buffers are encoded by the sink. */
export type PayloadValue =
  | Buffer
  | string
  | number
  | boolean
  | null
  | PayloadValue[]
  | { [field: string]: PayloadValue };

export interface ChangeEvent {
  /** Event schema version. */
  v: 1;
  op: string;
  db: number;
  key?: Buffer;
  /** Op-specific payload fields (value, fields, members, args, ...). */
  [field: string]: unknown;
  source: EventSource;
  /** Time redtail received the command, ms since the epoch (the replication stream carries no timestamps). */
  ts: number;
}

/** The position a sink must remember to resume exactly: the master does not repeat SELECT after +CONTINUE. */
export interface ReplicationPosition {
  replid: string;
  offset: number;
  db: number;
}
