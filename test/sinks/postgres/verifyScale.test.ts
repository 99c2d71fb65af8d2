import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyBinaryRows } from '../../../sinks/postgres/copyOut.js';
import { KeyHashes } from '../../../sinks/postgres/KeyHashes.js';
import {
  encodeCommands,
  type Reply,
  ReplyError,
  ReplyParser,
  RespPipe,
} from '../../../sinks/postgres/RespPipe.js';
import { describeDifference, writeMark } from '../../../sinks/postgres/verify.js';
import { BIG_MEMBERS, compareBatch, sameText } from '../../../sinks/postgres/verifyBatch.js';
import { parseMasterUrl } from '../../../src/link/MasterAddress.js';
import { describeDiffs, MirrorHarness, PG_URL, pgQuery } from './helpers.js';

/**
 * `redtail verify` at scale (verifyBatch.ts): batches of keys read by one MULTI each, the mirror streamed by one
 * binary COPY, big collections compared in chunks, keys only the master has found by hash. A real master mirrored
 * by the sink from its real replication stream (MirrorHarness), then the mirror tampered with in SQL: each kind of
 * damage must be reported, on its key only.
 */

/** Members of the big collections: over the threshold, so they take the chunked path, and several chunks long. */
const BIG = BIG_MEMBERS + 2_345;
const SMALL_KEYS = 3_500;
const FUTURE_MS = 4_102_444_800_000;
const NUL_VALUE = Buffer.from([0x61, 0x00, 0x62, 0xff]);

/** SCAN calls the harness's master has served (INFO commandstats). */
async function scanCalls(h: MirrorHarness): Promise<number> {
  return Number(/cmdstat_scan:calls=(\d+)/.exec((await h.redis.info('commandstats')) as string)?.[1] ?? 0);
}

describe('verify at scale against a real mirror', () => {
  let h: MirrorHarness;
  beforeAll(async () => {
    // The big collections stay inline jsonb values here (the tests tamper `keys.value`); row-stored ones (docs/
    // postgres.md, "Big collections") are verified, tampered with and caught in bigCollections.test.ts.
    h = await MirrorHarness.start({}, { bigCollectionMembers: 1_000_000 });
    const c = h.redis;
    const cmds: Array<Array<string | Buffer | number>> = [];
    for (let i = 0; i < SMALL_KEYS; i++) {
      switch (i % 6) {
        case 0:
          // Some JSON texts with escapes (parsed), most without (compared as bytes).
          cmds.push(['set', `s:${i}`, i % 12 === 0 ? `value ${i} "quoted" \\ é` : `plain ${i}`]);
          break;
        case 1:
          cmds.push(['hset', `h:${i}`, 'a', String(i), 'b', 'x']);
          break;
        case 2:
          cmds.push(['rpush', `l:${i}`, 'one', String(i), 'three']);
          break;
        case 3:
          cmds.push(['sadd', `t:${i}`, 'm1', String(i)]);
          break;
        case 4:
          cmds.push(['zadd', `z:${i}`, '1.5', 'a', String(i), 'b']);
          break;
        default:
          cmds.push(['set', `n:${i}`, NUL_VALUE]);
          cmds.push(['pexpireat', `n:${i}`, FUTURE_MS + i]);
      }
    }
    cmds.push(['xadd', 'stream', '1-1', 'f', 'v']);
    await h.run(cmds, 500);
    // Big collections, written in slices of 1,000 members per command.
    for (let from = 0; from < BIG; from += 1_000) {
      const to = Math.min(BIG, from + 1_000);
      const hash: string[] = [];
      const zset: string[] = [];
      const list: string[] = [];
      const set: string[] = [];
      for (let j = from; j < to; j++) {
        hash.push(`f${j}`, `v${j}`);
        zset.push(String(j / 7), `m${j}`);
        list.push(`e${j}`);
        set.push(`s${j}`);
      }
      await c.hset('bighash', ...hash);
      await c.zadd('bigzset', ...zset);
      await c.rpush('biglist', ...list);
      await c.sadd('bigset', ...set);
    }
    await c.pexpireat('bighash', FUTURE_MS);
    await h.sync(500);
  }, 180_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('an intact mirror of 3,500 keys and four big collections has no difference', async () => {
    const scansBefore = await scanCalls(h);
    const r = await h.verify();
    expect(r.differences.length, describeDiffs(r)).toBe(0);
    // No write during verify and every master key found in the mirror: the master was not SCANned.
    expect(await scanCalls(h)).toBe(scansBefore);
    // Every small key, the stream and the four big collections.
    expect(r.keys).toBe(SMALL_KEYS + 1 + 4);
    const sizes = await pgQuery<{ key: string; n: number }>(
      `SELECT convert_from(key, 'UTF8') AS key, jsonb_array_length(value) AS n FROM "${h.schema}".keys WHERE key_text LIKE 'big%' ORDER BY key`,
    );
    expect(sizes.map((s) => [s.key, s.n])).toEqual([
      ['bighash', BIG],
      ['biglist', BIG],
      ['bigset', BIG],
      ['bigzset', BIG],
    ]);
  });

  it('reports a tampered member (big and small), a lost TTL, an extra key and a missing key, each on its key', async () => {
    const s = `"${h.schema}".keys`;
    const tamper = async (sql: string) => {
      const rows = await pgQuery(`${sql} RETURNING 1 AS ok`);
      expect(rows, sql).toHaveLength(1);
    };
    // A member deep inside each big collection (past the first chunk), and in small ones.
    await tamper(`UPDATE ${s} SET value = jsonb_set(value, '{6100,1}', '"tampered"') WHERE key = 'bighash'`);
    await tamper(`UPDATE ${s} SET value = jsonb_set(value, '{7000,1}', '12345') WHERE key = 'bigzset'`);
    await tamper(`UPDATE ${s} SET value = jsonb_set(value, '{5500}', '"tampered"') WHERE key = 'biglist'`);
    await tamper(`UPDATE ${s} SET value = (value - 0) || '"s-extra"' WHERE key = 'bigset'`);
    await tamper(`UPDATE ${s} SET value = '[["a", "1"], ["b", "y"]]' WHERE key = 'h:1'`);
    await tamper(`UPDATE ${s} SET value = '["m1", "m2"]' WHERE key = 't:3'`);
    // Lost TTLs: a string with one (base64 value), a big hash with one.
    await tamper(`UPDATE ${s} SET expire_at = NULL WHERE key = 'n:5'`);
    await tamper(`UPDATE ${s} SET expire_at = NULL WHERE key = 'bighash' AND expire_at IS NOT NULL`);
    // A tampered string byte, NUL-holding value (stored as base64).
    await tamper(`UPDATE ${s} SET value = '{"base64": "YQBi/g=="}' WHERE key = 'n:11'`);
    // An extra key the master never had, and a key the mirror lost.
    await tamper(
      `INSERT INTO ${s} (db, key, key_text, type, value, updated_offset, snapshot_gen) VALUES (0, 'extra', 'extra', 'string', '"x"', 0, 0)`,
    );
    await tamper(`DELETE FROM ${s} WHERE key = 's:6'`);
    const scansBefore = await scanCalls(h);
    const r = await h.verify();
    // The mirror's keys account for one key fewer than the master has: SCAN found which.
    expect(await scanCalls(h)).toBeGreaterThan(scansBefore);
    const keys = r.differences.map((d) => d.key.toString()).sort();
    expect(keys, describeDiffs(r)).toEqual(
      ['bighash', 'biglist', 'bigset', 'bigzset', 'extra', 'h:1', 'n:11', 'n:5', 's:6', 't:3'].sort(),
    );
    const byKey = new Map(r.differences.map((d) => [d.key.toString(), d]));
    expect(byKey.get('extra')?.redis).toBeNull();
    expect(byKey.get('s:6')?.mirror).toBeNull();
    expect(byKey.get('s:6')?.redis?.value).toBe('plain 6');
    expect(byKey.get('n:5')?.redis?.expireAt).toBe(FUTURE_MS + 5);
    expect(byKey.get('n:5')?.mirror?.expireAt).toBeNull();
    // A big key's report comes from an atomic read of the whole value, as before.
    const big = byKey.get('bighash');
    expect(big?.redis?.expireAt).toBe(FUTURE_MS);
    const bigValue = big?.redis?.value;
    expect(Array.isArray(bigValue) ? bigValue.length : -1).toBe(BIG);
    expect(big && describeDifference(big)).toContain('bighash');
  });
});

describe('verify of a db without TTLs (no PEXPIRETIME: INFO keyspace in each MULTI proves there are none)', () => {
  let h: MirrorHarness;
  beforeAll(async () => {
    h = await MirrorHarness.start();
    const cmds: Array<Array<string | number>> = [];
    for (let i = 0; i < 2_500; i++) {
      cmds.push(['set', `s:${i}`, `v${i}`]);
      if (i % 5 === 0) cmds.push(['rpush', `l:${i}`, 'a', String(i)]);
    }
    await h.run(cmds, 500);
  }, 120_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('a write to the master during verify makes it SCAN for keys the mirror lacks, and the key converges', async () => {
    const before = await scanCalls(h);
    let wrote = false;
    const r = await h.verify({
      onProgress: () => {
        if (wrote) return;
        wrote = true;
        // Synchronous (redis-cli), so the master has it before verify's last INFO. Applied to the mirror by the
        // harness while verify runs, as redtail run would: no difference at the end.
        h.master.cli(['SET', 'written-during-verify', 'x']);
      },
    });
    expect(wrote).toBe(true);
    expect(r.differences, describeDiffs(r)).toEqual([]);
    expect(await scanCalls(h)).toBeGreaterThan(before);
    expect(r.keys).toBe(Number(/keys=(\d+)/.exec((await h.redis.info('keyspace')) as string)?.[1]));
    await h.redis.del('written-during-verify');
    await h.sync();
  });

  it('reports extra keys of both kinds, a TTL only the mirror has and a tampered list, and no more', async () => {
    expect((await h.verify()).differences).toEqual([]);
    const s = `"${h.schema}".keys`;
    await pgQuery(
      `INSERT INTO ${s} (db, key, key_text, type, value, updated_offset, snapshot_gen) VALUES
       (0, 'extra-s', 'extra-s', 'string', '"x"', 0, 0), (0, 'extra-l', 'extra-l', 'list', '["x"]', 0, 0)`,
    );
    await pgQuery(`UPDATE ${s} SET expire_at = now() + interval '1 day' WHERE key = 's:10'`);
    await pgQuery(`UPDATE ${s} SET value = '["a", "tampered"]' WHERE key = 'l:20'`);
    const r = await h.verify();
    expect(r.differences.map((d) => d.key.toString()).sort(), describeDiffs(r)).toEqual([
      'extra-l',
      'extra-s',
      'l:20',
      's:10',
    ]);
  });

  it('a key that gets a TTL after the db was seen without any is still compared with its TTL', async () => {
    await pgQuery(`DELETE FROM "${h.schema}".keys WHERE key LIKE 'extra-%'`);
    await h.run([
      ['pexpireat', 's:10', FUTURE_MS],
      ['pexpireat', 's:11', FUTURE_MS],
    ]);
    // The mirror loses one of the two TTLs; the batch is built as for a db without TTLs (volatile false).
    await pgQuery(`UPDATE "${h.schema}".keys SET expire_at = NULL WHERE key = 's:11'`);
    const pipe = await RespPipe.connect(parseMasterUrl(h.master.url()));
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      const ctx = {
        pipe,
        redis: h.master.client(),
        pg: c,
        schema: `"${h.schema}"`,
        db: 0,
        read: { pexpiretime: true, fieldTtl: false },
        volatile: { value: false },
      };
      const r = await compareBatch(
        ctx,
        ['s:9', 's:10', 's:11', 'l:20'].map((k) => Buffer.from(k)),
      );
      expect(ctx.volatile.value).toBe(true);
      expect(r.differences.map((d) => [d.key.toString(), d.redis?.expireAt, d.mirror?.expireAt])).toEqual([
        ['s:11', FUTURE_MS, null],
        ['l:20', null, null],
      ]);
    } finally {
      pipe.close();
      await c.end();
    }
  });
});

describe('sameText (collections settled on the JSON text Postgres printed)', () => {
  const field = (text: string) => Buffer.concat([Buffer.from([1]), Buffer.from(text, 'utf8')]);
  const reply = (...xs: string[]) => xs.map((x) => Buffer.from(x, 'utf8'));

  it('matches the mirror order of a set and a hash whatever order the master replied in', () => {
    expect(sameText('list', field('["b", "a", "b"]'), reply('b', 'a', 'b'))).toBe(true);
    expect(sameText('set', field('["1", "a", "m1"]'), reply('m1', '1', 'a'))).toBe(true);
    expect(sameText('hash', field('[["a", "1"], ["b", "x y"]]'), reply('b', 'x y', 'a', '1'))).toBe(true);
    expect(sameText('list', field('[]'), [])).toBe(true);
  });

  it('is false for any other text, and for members it does not judge (escapes, non-ASCII)', () => {
    expect(sameText('list', field('["b", "a"]'), reply('a', 'b'))).toBe(false);
    expect(sameText('list', field('["a", "b"]'), reply('a'))).toBe(false);
    expect(sameText('list', field('["a"]'), reply('a', 'b'))).toBe(false);
    expect(sameText('set', field('["a", "tampered"]'), reply('a', 'b'))).toBe(false);
    expect(sameText('hash', field('[["a", "1"]]'), reply('a', '2'))).toBe(false);
    expect(sameText('list', field('["a\\"b"]'), reply('a"b'))).toBe(false);
    expect(sameText('list', field('["é"]'), reply('é'))).toBe(false);
    expect(sameText('zset', field('[["a", 1]]'), reply('a', '1'))).toBe(false);
  });
});

describe('writeMark', () => {
  const info = (dirty: number, saves = 3, expired = 0) =>
    `# Persistence\r\nrdb_changes_since_last_save:${dirty}\r\nrdb_last_save_time:1796038000\r\nrdb_saves:${saves}\r\n# Stats\r\nexpired_keys:${expired}\r\nevicted_keys:0\r\nmaster_repl_offset:140\r\n`;

  it('changes with a write, a save and an expired key, and not with the replication offset alone', () => {
    const base = writeMark(info(5));
    expect(writeMark(info(5))).toBe(base);
    expect(writeMark(info(6))).not.toBe(base);
    // A save resets the dirty counter: the save count tells.
    expect(writeMark(info(5, 4))).not.toBe(base);
    expect(writeMark(info(5, 3, 1))).not.toBe(base);
    expect(writeMark(info(5).replace('master_repl_offset:140', 'master_repl_offset:154'))).toBe(base);
  });
});

describe('RESP reply parser', () => {
  it('gives the same replies however the bytes are split', () => {
    const wire = Buffer.concat([
      Buffer.from('+OK\r\n+QUEUED\r\n:-2\r\n:1796000000123\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n', 'latin1'),
      Buffer.from('-WRONGTYPE Operation against a key holding the wrong kind of value\r\n', 'latin1'),
      Buffer.from('*3\r\n$4\r\na\r\nb\r\n*2\r\n:7\r\n$-1\r\n+string\r\n', 'latin1'),
      Buffer.from(`$${300_000}\r\n${'x'.repeat(300_000)}\r\n`, 'latin1'),
    ]);
    const parse = (chunks: Buffer[]) => {
      const out: Reply[] = [];
      const p = new ReplyParser((r) => out.push(r));
      for (const c of chunks) p.feed(c);
      return out;
    };
    const whole = parse([wire]);
    expect(whole).toHaveLength(11);
    expect(whole.slice(0, 8)).toEqual(['OK', 'QUEUED', -2, 1796000000123, null, null, [], Buffer.alloc(0)]);
    expect(whole[8]).toBeInstanceOf(ReplyError);
    expect((whole[8] as ReplyError).message).toMatch(/^WRONGTYPE/);
    expect(whole[9]).toEqual([Buffer.from('a\r\nb'), [7, null], 'string']);
    expect((whole[10] as Buffer).length).toBe(300_000);
    // Byte by byte through the small replies, then odd-sized chunks.
    const cut = wire.length - 300_020;
    const small = [...wire.subarray(0, cut)].map((b) => Buffer.from([b]));
    const rest: Buffer[] = [];
    for (let i = cut; i < wire.length; i += 7_777) rest.push(wire.subarray(i, i + 7_777));
    expect(parse([...small, ...rest])).toEqual(whole);
  });

  it('encodes commands as RESP arrays of bulk strings', () => {
    expect(encodeCommands([['GET', Buffer.from([0, 0xff])], ['PING']]).toString('latin1')).toBe(
      '*2\r\n$3\r\nGET\r\n$2\r\n\u0000\u00ff\r\n*1\r\n$4\r\nPING\r\n',
    );
  });
});

describe('binary COPY reader', () => {
  it("reads Postgres's own COPY output, NULLs and big fields included, however it is split", async () => {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      const sql = `COPY (SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE decode(repeat('ab', i * 50), 'hex') END,
                   CASE WHEN i = 7 THEN repeat('z', 2000000) ELSE 'v' || i END FROM generate_series(1, 40) i) TO STDOUT (FORMAT binary)`;
      const chunks: Buffer[] = [];
      for await (const ch of c.query(copyStreams.to(sql))) chunks.push(ch as Buffer);
      const wire = Buffer.concat(chunks);
      const read = (parts: Buffer[]) => {
        const rows: Array<Array<string | null>> = [];
        const r = new CopyBinaryRows((b, at) => {
          const row: Array<string | null> = [];
          for (let i = 0; i < at.length; i += 2)
            row.push(at[i]! < 0 ? null : b.toString('hex', at[i], at[i + 1]).slice(0, 16));
          rows.push(row);
        });
        for (const p of parts) r.feed(p);
        return rows;
      };
      const whole = read([wire]);
      expect(whole).toHaveLength(40);
      expect(whole[2]![1]).toBeNull();
      expect(whole[6]![2]).toBe('7a7a7a7a7a7a7a7a');
      const split: Buffer[] = [];
      for (let i = 0; i < wire.length; i += 1_001) split.push(wire.subarray(i, i + 1_001));
      expect(read(split)).toEqual(whole);
      expect(
        read([...wire.subarray(0, 3_000)].map((b) => Buffer.from([b])).concat(wire.subarray(3_000))),
      ).toEqual(whole);
    } finally {
      await c.end();
    }
  });
});

describe('KeyHashes', () => {
  it('counts distinct keys and finds the ones another set lacks', () => {
    const a = new KeyHashes();
    const b = new KeyHashes();
    for (let i = 0; i < 50_000; i++) {
      a.add(Buffer.from(`key:${i}`));
      if (i % 1_000 !== 17) b.add(Buffer.from(`key:${i}`));
      if (i % 10_000 === 0) a.add(Buffer.from(`key:${i}`)); // SCAN returning a key twice
    }
    b.add(Buffer.from('only-b'));
    a.seal();
    b.seal();
    expect(a.size).toBe(50_005);
    expect(a.distinct).toBe(50_000);
    const missing = a.notIn(b);
    expect(missing.size).toBe(50);
    expect(missing.has(Buffer.from('key:17'))).toBe(true);
    expect(missing.has(Buffer.from('key:18'))).toBe(false);
    expect(a.has(Buffer.from('only-b'))).toBe(false);
    expect(b.has(Buffer.from('only-b'))).toBe(true);
    expect(b.notIn(a).size).toBe(1);
  });
});
