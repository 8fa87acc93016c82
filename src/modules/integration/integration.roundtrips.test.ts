import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { CreateCampaignBody } from '../campaigns/campaigns.schema.js';
import { createCampaign } from '../campaigns/campaigns.service.js';

// The hot path's round trips to PostgreSQL, counted per request (docs/performance.md): each is a
// statement the server parses, plans and answers, and latency the request waits for.

let t: TestApp;
let m: TestMerchant;
let customerId: string;
const statements: string[] = [];
const names: string[] = [];
/** The names the statements `counted` returned went with (DATABASE_PREPARED_STATEMENTS); '' when unnamed. */
let fewestNames: string[] = [];
const originalQuery = pg.Client.prototype.query;

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  m = await createTestMerchant(t.db);
  customerId = (await createTestCustomer(t.db, { merchant: m })).customerId;
  // Every statement any pool client sends, the listener's LISTEN aside.
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0] as string | { text?: string; name?: string };
    const text = typeof first === 'string' ? first : (first?.text ?? '');
    if (!/^\s*(listen|select pg_notify)/i.test(text)) {
      statements.push(text);
      names.push(typeof first === 'string' ? '' : (first?.name ?? ''));
    }
    return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof pg.Client.prototype.query;
});
afterEach(() => {
  statements.length = 0;
  names.length = 0;
});
afterAll(async () => {
  pg.Client.prototype.query = originalQuery;
  await t.close();
});

/**
 * The statements one request sends: the fewest seen over three runs, since timers of the app
 * (request statistics, health checks) may send one of their own while a request runs.
 */
async function counted(request: () => Promise<{ statusCode: number }>, status: number): Promise<string[]> {
  let fewest: string[] | null = null;
  for (let run = 0; run < 3; run++) {
    statements.length = 0;
    names.length = 0;
    const res = await request();
    expect(res.statusCode).toBe(status);
    if (fewest === null || statements.length < fewest.length) {
      fewest = [...statements];
      fewestNames = [...names];
    }
  }
  statements.length = 0;
  return fewest ?? [];
}

function post(url: string, payload: object, headers: Record<string, string> = {}) {
  return t.app.inject({
    method: 'POST',
    url: `/api/v1/integration${url}`,
    headers: { 'x-api-key': m.apiKey, ...headers },
    payload,
  });
}

function commit(key: string, orderId = randomUUID()) {
  return post(
    '/purchases',
    { customer: { customerId }, receipt: { total: 10_000 }, orderId, outletId: m.outletId },
    { 'idempotency-key': key },
  );
}

describe('round trips of the hot path', () => {
  it('resolves a customer by id in one statement once the key and outlet are known', async () => {
    const resolve = () => post('/customers/resolve', { customerId, outletId: m.outletId });
    await counted(resolve, 200); // warms the API-key and context caches
    expect(await counted(resolve, 200)).toHaveLength(1);
  });

  it('commits by customer id in two statements: the replay-or-customer read and the commit', async () => {
    await counted(() => commit(randomUUID()), 201); // warms the caches
    const sent = await counted(() => commit(randomUUID()), 201);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toContain('loyalty_commit_purchase');
    // Both go as named prepared statements: parsed and planned once per connection.
    expect(fewestNames).toEqual([expect.stringMatching(/^loyalty_/), expect.stringMatching(/^loyalty_/)]);
  });

  it('answers a replay with one statement', async () => {
    const key = randomUUID();
    const orderId = randomUUID();
    expect((await commit(key, orderId)).statusCode).toBe(201);
    expect(await counted(() => commit(key, orderId), 201)).toHaveLength(1);
  });

  it('reads active campaigns once per merchant, not per commit, and again after a change', async () => {
    const base = (await commit(randomUUID())).json().purchase.earnedPoints as number;
    expect(base).toBeGreaterThan(0);
    await createCampaign(t.db, {
      merchantId: m.merchantId,
      input: CreateCampaignBody.parse({
        name: 'Double',
        kind: 'multiplier',
        status: 'active',
        effect: { multiplierBp: 20_000 },
      }),
    });
    // The change is announced: the next commit sees the campaign.
    await expect
      .poll(async () => (await commit(randomUUID())).json().purchase.earnedPoints, { timeout: 5_000 })
      .toBe(base * 2);
    expect(await counted(() => commit(randomUUID()), 201)).toHaveLength(2);
  });
});
