import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedis } from '../redis.js';
import { FailureLimiter } from './rate-limit.js';

// Attempts judged after they ran (code lookups): failures past the limit are refused, successes are
// shown only under it, and nothing is held while attempts are in flight. In memory, and in Redis
// where there is one (REDIS_URL: CI and development machines).

const REDIS_URL = process.env.REDIS_URL;
const redis = REDIS_URL ? createRedis(REDIS_URL) : null;
afterAll(() => redis?.disconnect());

const stores = [
  { name: 'in memory', redis: () => null },
  ...(redis ? [{ name: 'in Redis', redis: () => redis }] : []),
];

describe.each(stores)('FailureLimiter.fail and refusal, $name', (store) => {
  async function limiter(max: number) {
    const r = store.redis();
    if (r && r.status !== 'ready') await once(r, 'ready');
    return new FailureLimiter({ redis: r, max, windowSeconds: 60, prefix: `test:${randomUUID()}` });
  }

  it('refuses nothing while failures are within the limit, however many run at once', async () => {
    const l = await limiter(3);
    expect(await Promise.all(Array.from({ length: 50 }, () => l.refusal('key')))).toEqual(Array(50).fill(0));
    expect(l.knownRefusal('key')).toBe(0);
  });

  it('answers at most the limit of parallel failures as failures, and refuses after', async () => {
    const l = await limiter(3);
    const results = await Promise.all(Array.from({ length: 20 }, () => l.fail('key')));
    expect(results.filter((s) => s === 0)).toHaveLength(3);
    for (const s of results.filter((s) => s > 0)) expect(s).toBeLessThanOrEqual(60);
    const refused = await l.refusal('key');
    expect(refused).toBeGreaterThan(0);
    // The count stays at the failures answered as such.
    expect(await l.failures('key')).toBe(3);
    // The process remembers the refusal: later attempts are turned away without asking the store.
    expect(l.knownRefusal('key')).toBeGreaterThan(0);
    expect(l.knownRefusal('other')).toBe(0);
    expect(await l.refusal('other')).toBe(0);
  });
});
