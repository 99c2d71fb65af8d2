import type { ReplicationPosition } from '../events/ChangeEvent.js';

/** A sink's resume position plus whatever the sink needs to undo a half-written batch (e.g. a file's length). */
export interface Checkpoint extends ReplicationPosition {
  /** Sink-specific extra state saved atomically with the position. */
  extra?: Record<string, unknown>;
  updatedAt?: string;
}

/** Where one sink keeps its last durable position. Kafka and Postgres keep theirs inside their own transactions. */
export interface CheckpointStore {
  load(): Promise<Checkpoint | null>;
  save(checkpoint: Checkpoint): Promise<void>;
}
