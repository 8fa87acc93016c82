import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRedis } from '../redis.js';
import { claimAlert, createDatabaseWatch, dbAlertKeys } from './availability.js';
import { createDatabase } from './database.js';

// The database-down alert is seen by every API replica at once; with Redis one of them sends it.
// Runs where Redis is (REDIS_URL: CI and development machines).

const REDIS_URL = process.env.REDIS_URL;
const redis = REDIS_URL ? createRedis(REDIS_URL) : null;
// A server nobody listens on: every probe fails at once, as while PostgreSQL is down.
const unreachable = createDatabase({ connectionString: 'postgres://postgres@127.0.0.1:1/none', max: 1 });
const config = { ALERT_DB_DOWN_MINUTES: 0.001, ALERT_COOLDOWN_MINUTES: 60, APP_ENCRYPTION_KEY: randomUUID() };
const keys = dbAlertKeys(config.APP_ENCRYPTION_KEY);

afterAll(async () => {
  await redis?.del(keys.outage, keys.recovery);
  redis?.disconnect();
  await unreachable.db.destroy();
});

describe.skipIf(!redis)('the database-down alert across replicas', () => {
  beforeAll(async () => {
    // No offline queue: commands wait for the connection here, not in the product.
    if (redis && redis.status !== 'ready') await once(redis, 'ready');
  });
  beforeEach(async () => {
    await redis?.del(keys.outage, keys.recovery);
  });

  it('is sent by one of three replicas with Redis, and by each without it', async () => {
    const sent: string[] = [];
    const replica = (name: string, shared: typeof redis, installation = config) =>
      createDatabaseWatch(
        unreachable.db,
        installation,
        async (text) => {
          sent.push(`${name}: ${text}`);
          return true;
        },
        shared,
      );
    const withRedis = ['a', 'b', 'c'].map((name) => replica(name, redis));
    // The first probe starts the outage clock, the ones after the threshold alert.
    for (let round = 0; round < 5; round++) {
      await Promise.all(withRedis.map((watch) => watch.check()));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(sent.filter((line) => line.includes('ALERT: PostgreSQL unreachable'))).toHaveLength(1);

    sent.length = 0;
    const alone = ['d', 'e'].map((name) => replica(name, null));
    for (let round = 0; round < 5; round++) {
      await Promise.all(alone.map((watch) => watch.check()));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(sent.filter((line) => line.includes('ALERT: PostgreSQL unreachable'))).toHaveLength(2);

    // Another installation on the same Redis (another encryption key) sends its own.
    sent.length = 0;
    const other = { ...config, APP_ENCRYPTION_KEY: randomUUID() };
    const staging = ['s1', 's2'].map((name) => replica(name, redis, other));
    try {
      for (let round = 0; round < 5; round++) {
        await Promise.all(staging.map((watch) => watch.check()));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(sent.filter((line) => line.includes('ALERT: PostgreSQL unreachable'))).toHaveLength(1);
    } finally {
      const otherKeys = dbAlertKeys(other.APP_ENCRYPTION_KEY);
      await redis?.del(otherKeys.outage, otherKeys.recovery);
    }
  });

  it('claims each alert once until it expires; a failing Redis lets every replica send', async () => {
    const key = `loyalty:test:claim:${randomUUID()}`;
    expect(await claimAlert(redis, key, 1_000)).toBe(true);
    expect(await claimAlert(redis, key, 1_000)).toBe(false);
    expect(await claimAlert(null, key, 1_000)).toBe(true);
    const down = createRedis('redis://127.0.0.1:1');
    try {
      expect(await claimAlert(down, key, 1_000)).toBe(true);
    } finally {
      down?.disconnect();
    }
    await redis?.del(key);
  });
});
