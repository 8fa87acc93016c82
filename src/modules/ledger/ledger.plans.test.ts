import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';

// The hot path's functions look rows up by key, so one generic plan per connection is right for every
// customer. Left to choose, PostgreSQL plans a statement again for each call once a regular (a
// customer with many purchases) is among the statistics' most common values: a resolve then cost
// 2.7 M instructions instead of 0.46 M (npm run bench:sql). With plan_cache_mode = force_generic_plan
// on the function, the plan is made once and kept: auto_explain shows the customer as a parameter in
// it, where a plan made for one call names the customer's id.

let t: TestDatabase;
let merchant: TestMerchant;
const customers: string[] = [];

/** Commits $3 earn-only purchases of customer $2 of merchant $1 through the ledger function. */
const COMMIT = `select loyalty_commit_purchase(jsonb_build_object(
  'merchantId', $1::uuid, 'customerId', $2::uuid, 'orderId', gen_random_uuid()::text,
  'total', 1000 + n, 'eligibleAmount', 1000 + n, 'discount', 0, 'earnPoints', 1, 'redeemPoints', 0,
  'earnRateBp', 500, 'receipt', jsonb_build_object('total', 1000 + n), 'pendingDays', 0, 'lifetimeDays', 365))
  from generate_series(1, $3::int) n`;

/** Runs `work` on a connection of its own. */
async function withClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: t.url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  t = await createTestDatabase({ poolMax: 1 });
  merchant = await createTestMerchant(t.db);
  for (let i = 0; i < 100; i++) customers.push((await createTestCustomer(t.db, { merchant })).customerId);
  // Four regulars with 1,000 purchases each, the others with two; then the statistics, as autovacuum
  // takes them.
  await withClient(async (client) => {
    for (const [i, id] of customers.entries()) {
      await client.query(COMMIT, [merchant.merchantId, id, i < 4 ? 1_000 : 2]);
    }
    await client.query('analyze');
  });
}, 120_000);
afterAll(async () => {
  await t?.drop();
});

/**
 * The plans PostgreSQL runs (auto_explain, nested statements included) for the last of 21 calls of
 * `sqlText` on a connection of its own, each for another customer who is not a regular.
 */
async function plansOf(sqlText: string, params: (customerId: string) => unknown[]) {
  return withClient(async (client) => {
    const call = async () => {
      const id = customers[4 + Math.floor(Math.random() * 96)] ?? '';
      await client.query(sqlText, params(id));
      return id;
    };
    for (let i = 0; i < 20; i++) await call();
    const plans: string[] = [];
    client.on('notice', (notice) => plans.push(notice.message ?? ''));
    await client.query(`load 'auto_explain'`);
    await client.query('set auto_explain.log_min_duration = 0');
    await client.query('set auto_explain.log_nested_statements = on');
    await client.query('set client_min_messages = log');
    const id = await call();
    return { id, plans };
  });
}

describe('the hot path keeps one plan per connection', () => {
  // A generic plan names the customer as a parameter; a plan made for one call names its id.
  it.each([
    {
      name: 'the customer read',
      sqlText: 'select * from loyalty_customer_state($1, $2, null, null, null)',
      params: (id: string) => [merchant.merchantId, id],
      statement: 'from customers c join customer_balances b',
    },
    {
      name: 'the commit',
      sqlText: COMMIT,
      params: (id: string) => [merchant.merchantId, id, 1],
      statement: 'update balances',
    },
  ])('$name, with regulars among the statistics', async ({ sqlText, params, statement }) => {
    const { id, plans } = await plansOf(sqlText, params);
    expect(
      plans.some((p) => p.includes(statement)),
      plans.join('\n'),
    ).toBe(true);
    expect(plans.filter((p) => p.includes(`'${id}'::uuid`))).toEqual([]);
  });
});
