import { describe, expect, it } from 'vitest';
import { TopicRouter } from '../../../sinks/kafka/TopicRouter.js';
import { event } from './fixtures/events.js';

describe('TopicRouter', () => {
  it('routes every event by its own db, type, op and key prefix when consecutive events differ', () => {
    const router = new TopicRouter(
      'redtail.<db>.<type>',
      [{ prefix: 'session:', topic: 'redtail.sessions.<op>' }],
      'redtail.state.<db>',
    );
    const cases = [
      [event('set', 'a', 1, { type: 'string' }, 0), 'redtail.0.string', 'redtail.state.0'],
      [event('set', 'a', 2, { type: 'string' }, 0), 'redtail.0.string', 'redtail.state.0'],
      [event('hset', 'h', 3, { type: 'hash' }, 0), 'redtail.0.hash', 'redtail.state.0'],
      [event('set', 'a', 4, { type: 'string' }, 5), 'redtail.5.string', 'redtail.state.5'],
      [event('set', 'session:1', 5, { type: 'string' }, 5), 'redtail.sessions.set', 'redtail.state.5'],
      [event('del', 'session:1', 6, {}, 5), 'redtail.sessions.del', 'redtail.state.5'],
      [event('del', 'b', 7, {}, 5), 'redtail.5.none', 'redtail.state.5'],
      [event('set', 'a', 8, { type: 'string' }, 0), 'redtail.0.string', 'redtail.state.0'],
    ] as const;
    for (const [ev, topic, state] of cases) {
      expect(router.topicFor(ev)).toBe(topic);
      expect(router.stateTopicFor(ev)).toBe(state);
    }
  });
});
