import type { Admin, ITopicConfig } from 'kafkajs';
import type { SinkLogger } from './config.js';
import {
  classifyKafkaError,
  KafkaAuthorizationError,
  KafkaOffsetsTopicError,
  KafkaTopicMissingError,
  kafkaCodes,
} from './errors.js';
import { kafkajs } from './kafkajsSeam.js';

export type TopicKind = 'events' | 'state' | 'offsets';

export interface TopicManagerOptions {
  brokers: readonly string[];
  create: boolean;
  partitions: number;
  /** 0: min(3, brokers in the cluster). */
  replicationFactor: number;
  eventTopicConfig: Record<string, string>;
  logger: SinkLogger;
}

/**
 * Creates the topics the sink writes to before the first transaction that needs them (kafkajs' CreateTopics v3
 * cannot ask for broker defaults, so partitions and replication are explicit) and checks the offsets topic keeps
 * its records. Known topics are cached; routing by db/type discovers topics as events arrive.
 */
export class TopicManager {
  private readonly known = new Set<string>();
  /**
   * Partition counts of the known topics, for sizing produce requests per partition batch (messages.ts). Read once
   * per topic; partitions added later are seen at the next start (until then requests are sized by the old count,
   * and a batch the broker finds too large makes the sink retry with smaller requests).
   */
  private readonly partitions = new Map<string, number>();
  private replication = 0;

  constructor(
    private readonly admin: Admin,
    private readonly options: TopicManagerOptions,
  ) {}

  private async replicationFactor(): Promise<number> {
    if (this.options.replicationFactor > 0) return this.options.replicationFactor;
    if (this.replication === 0) {
      const cluster = await this.admin.describeCluster();
      this.replication = Math.max(1, Math.min(3, cluster.brokers.length));
    }
    return this.replication;
  }

  forget(topic: string): void {
    this.known.delete(topic);
    this.partitions.delete(topic);
  }

  partitionCount = (topic: string): number | undefined => this.partitions.get(topic);

  /** Best effort: without the counts, requests are only sized per topic (as before the counts were read). */
  private async readPartitionCounts(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    try {
      const meta = await this.admin.fetchTopicMetadata({ topics });
      for (const t of meta.topics)
        if (t.partitions.length > 0) this.partitions.set(t.name, t.partitions.length);
    } catch (err) {
      this.options.logger.debug({ topics, err: (err as Error).message }, 'kafka sink: no partition counts');
    }
  }

  async ensure(topics: Iterable<string>, kind: (topic: string) => TopicKind): Promise<void> {
    const missing = [...new Set(topics)].filter((t) => !this.known.has(t));
    if (missing.length === 0) return;
    let existing: Set<string>;
    try {
      existing = new Set(await this.admin.listTopics());
    } catch (err) {
      throw classifyKafkaError(err, { brokers: this.options.brokers, what: 'list topics' });
    }
    const create = missing.filter((t) => !existing.has(t));
    const found = missing.filter((t) => existing.has(t));
    await this.readPartitionCounts(found);
    for (const t of found) this.known.add(t);
    if (create.length === 0) return;
    if (!this.options.create) throw new KafkaTopicMissingError(create[0]!, 'createTopics is disabled');
    const rf = await this.replicationFactor();
    const specs: ITopicConfig[] = create.map((topic) => {
      const k = kind(topic);
      const configs: Record<string, string> =
        k === 'events' ? { ...this.options.eventTopicConfig } : { 'cleanup.policy': 'compact' };
      return {
        topic,
        numPartitions: k === 'offsets' ? 1 : this.options.partitions,
        replicationFactor: rf,
        configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
      };
    });
    try {
      await this.admin.createTopics({ topics: specs, waitForLeaders: true });
    } catch (err) {
      const codes = kafkaCodes(err);
      if (codes.includes('TOPIC_AUTHORIZATION_FAILED') || codes.includes('CLUSTER_AUTHORIZATION_FAILED')) {
        throw new KafkaAuthorizationError(
          codes.includes('TOPIC_AUTHORIZATION_FAILED')
            ? 'TOPIC_AUTHORIZATION_FAILED'
            : 'CLUSTER_AUTHORIZATION_FAILED',
          `creating topic ${create.join(', ')} (grant Create, or create the topics beforehand)`,
          err,
        );
      }
      // Another redtail (or an operator) may have created it in between; anything else is a real failure.
      if (!codes.every((c) => c === 'TOPIC_ALREADY_EXISTS'))
        throw classifyKafkaError(err, {
          brokers: this.options.brokers,
          what: `create topic ${create.join(', ')}`,
        });
    }
    for (const spec of specs) {
      this.options.logger.info(
        { topic: spec.topic, partitions: spec.numPartitions, replicationFactor: spec.replicationFactor },
        'kafka sink: created topic',
      );
      this.known.add(spec.topic);
      if (spec.numPartitions !== undefined) this.partitions.set(spec.topic, spec.numPartitions);
    }
  }

  /**
   * The checkpoint must survive forever: `cleanup.policy=compact` keeps the latest record per key, whereas
   * `delete` (or `compact,delete` with finite retention) would eventually drop it and the next start would
   * resync from scratch.
   */
  async verifyCompacted(topic: string): Promise<void> {
    let entries: Record<string, string>;
    try {
      const res = await this.admin.describeConfigs({
        includeSynonyms: false,
        resources: [
          {
            type: kafkajs.ConfigResourceTypes.TOPIC,
            name: topic,
            configNames: ['cleanup.policy', 'retention.ms'],
          },
        ],
      });
      entries = {};
      for (const e of res.resources[0]?.configEntries ?? []) entries[e.configName] = e.configValue;
    } catch (err) {
      const e = classifyKafkaError(err, {
        brokers: this.options.brokers,
        what: `describe configs of ${topic}`,
      });
      if (e instanceof KafkaAuthorizationError) {
        this.options.logger.warn(
          { topic, err: e.message },
          'kafka sink: cannot verify that the offsets topic is compacted (no DescribeConfigs permission)',
        );
        return;
      }
      throw e;
    }
    const policy = (entries['cleanup.policy'] ?? '').split(',').map((s) => s.trim());
    const retention = Number(entries['retention.ms'] ?? '-1');
    if (!policy.includes('compact') || (policy.includes('delete') && retention >= 0)) {
      throw new KafkaOffsetsTopicError(
        `offsets topic ${topic} has cleanup.policy=${entries['cleanup.policy'] ?? '?'}` +
          (policy.includes('delete') ? ` and retention.ms=${retention}` : '') +
          `; checkpoints would be deleted. Use a topic with cleanup.policy=compact ` +
          `(kafka-configs --alter --entity-type topics --entity-name ${topic} --add-config cleanup.policy=compact)`,
      );
    }
  }
}
