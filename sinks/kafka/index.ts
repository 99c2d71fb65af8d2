export { type ExtraCodec, registerCodec } from './codecs.js';
export type { Compression, KafkaSinkOptions, ResolvedKafkaSinkConfig, SinkLogger } from './config.js';
export { parseKafkaSpec, resolveKafkaSinkConfig } from './config.js';
export * from './errors.js';
export { createKafkaSink, type DeliveryMode, KafkaSink, type KafkaSinkStats } from './KafkaSink.js';
export { type CheckpointRecord, readLastCheckpoint } from './OffsetsTopic.js';
export { STATE_RULES, type StateEffect, type StateRule } from './StateTopic.js';
export { type TopicRoute, TopicRouter } from './TopicRouter.js';
