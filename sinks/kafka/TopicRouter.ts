import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { KafkaConfigError } from './errors.js';

/** A routing rule: every given condition must hold; the first matching rule picks the topic template. */
export interface TopicRoute {
  db?: number | number[];
  /** Key prefix (bytes of the string as UTF-8, or a Buffer). */
  prefix?: string | Buffer;
  /** Redis type of the event (`string`, `hash`, ...). */
  type?: string | string[];
  op?: string | string[];
  /** Template like the sink's `topic`: `<db>`, `<type>` and `<op>` are replaced. */
  topic: string;
}

const VALID_TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
const PLACEHOLDER = /<(db|type|op)>/g;

function oneOf<T>(want: T | T[] | undefined, got: T): boolean {
  if (want === undefined) return true;
  return Array.isArray(want) ? want.includes(got) : want === got;
}

interface CompiledRoute {
  route: TopicRoute;
  prefix: Buffer | undefined;
}

/**
 * Picks the event topic (and the state topic) of an event. Rendered names are cached: a batch of thousands of
 * events touches a handful of topics.
 */
export class TopicRouter {
  private readonly routes: CompiledRoute[];
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly template: string,
    routes: TopicRoute[] = [],
    private readonly stateTemplate: string | null = null,
  ) {
    this.routes = routes.map((route) => ({
      route,
      prefix:
        route.prefix === undefined
          ? undefined
          : Buffer.isBuffer(route.prefix)
            ? route.prefix
            : Buffer.from(route.prefix, 'utf8'),
    }));
    // A key's state records must all land in one topic, or compaction cannot pair a tombstone with its value.
    if (stateTemplate !== null && /<(type|op)>/.test(stateTemplate))
      throw new KafkaConfigError(`kafka sink: stateTopic "${stateTemplate}" may only use <db>`);
    for (const t of [template, stateTemplate, ...routes.map((r) => r.topic)]) {
      if (t !== null) TopicRouter.render(t, 0, 'string', 'set');
    }
  }

  static render(template: string, db: number, type: string, op: string): string {
    const topic = template.replace(PLACEHOLDER, (_, name: string) =>
      name === 'db' ? String(db) : name === 'type' ? type : op,
    );
    if (!VALID_TOPIC.test(topic))
      throw new KafkaConfigError(
        `kafka sink: topic template "${template}" gives "${topic}", not a valid Kafka topic name ([a-zA-Z0-9._-], at most 249)`,
      );
    return topic;
  }

  /**
   * The last name rendered for each caller (event topic, state topic): consecutive events nearly always share db,
   * type and op, and the Map key below costs a string build and hash per event (8 % of the Kafka sink's record
   * building in a profile, bench/NOTES.md K5).
   */
  private readonly last = { event: new LastTopic(), state: new LastTopic() };

  private memo(which: LastTopic, template: string, db: number, type: string, op: string): string {
    if (which.db === db && which.op === op && which.type === type && which.template === template)
      return which.topic;
    const topic = this.cached(template, db, type, op);
    which.template = template;
    which.db = db;
    which.type = type;
    which.op = op;
    which.topic = topic;
    return topic;
  }

  private cached(template: string, db: number, type: string, op: string): string {
    const k = `${template}\u0000${db}\u0000${type}\u0000${op}`;
    let topic = this.cache.get(k);
    if (topic === undefined) {
      topic = TopicRouter.render(template, db, type, op);
      this.cache.set(k, topic);
    }
    return topic;
  }

  topicFor(ev: ChangeEvent): string {
    const type = typeof ev.type === 'string' ? ev.type : 'none';
    for (const { route, prefix } of this.routes) {
      if (!oneOf(route.db, ev.db) || !oneOf(route.type, type) || !oneOf(route.op, ev.op)) continue;
      if (prefix !== undefined && !(ev.key !== undefined && prefixOf(ev.key, prefix))) continue;
      return this.memo(this.last.event, route.topic, ev.db, type, ev.op);
    }
    return this.memo(this.last.event, this.template, ev.db, type, ev.op);
  }

  /** Null when the state topic is off. Per db, so equal keys of different databases never compact together. */
  stateTopicFor(ev: ChangeEvent): string | null {
    if (this.stateTemplate === null) return null;
    return this.memo(this.last.state, this.stateTemplate, ev.db, 'none', 'none');
  }
}

class LastTopic {
  template = '';
  db = -1;
  type = '';
  op = '';
  topic = '';
}

function prefixOf(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
