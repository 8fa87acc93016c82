import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { issueCustomerCode } from '../customers/customers.service.js';
import { createHold } from './holds.service.js';

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

// The set-based commit (loyalty_commit_plain_purchases) keeps one generic plan per connection too,
// made with the statistics of the moment, when lots and holds past their expiry are few (the jobs
// take them twice an hour and every minute). Time passing makes rows due without changing the
// statistics: a campaign's lots expiring at midnight, holds of a busy hour. Each read of the
// statement must stay on the batch's own customers, codes and holds: a plan that walked every due
// lot or hold of all merchants would cost each batch as much as there are.
describe('the set-based commit, planned while little was due', () => {
  it('reads only the batch’s own lots, codes and holds when many become due', async () => {
    const [earner, coded, holder, crowd] = [
      await createTestCustomer(t.db, { merchant }),
      await createTestCustomer(t.db, { merchant }),
      await createTestCustomer(t.db, { merchant, points: 200 }),
      await createTestCustomer(t.db, { merchant }),
    ];
    const { code } = await issueCustomerCode(t.db, {
      merchantId: merchant.merchantId,
      customerId: coded.customerId,
      ttlSeconds: 3_600,
    });
    const { hold } = await createHold(t.db, {
      merchantId: merchant.merchantId,
      customerId: holder.customerId,
      points: 30,
      ttlSeconds: 600,
      receipt: { total: 5_000 },
      context: {},
    });
    // Another customer's 3,000 lots and 3,000 holds, none due yet, and 3,000 live codes; then the
    // statistics, as autovacuum takes them.
    await sql`insert into point_lots (merchant_id, customer_id, source, points, remaining, state, available_at,
                                      expires_at)
              select ${merchant.merchantId}, ${crowd.customerId}, 'adjust', 1, 1, 'active', now() - interval '2 days',
                     now() + interval '1 hour'
              from generate_series(1, 3000)`.execute(t.db);
    await sql`insert into customer_codes (merchant_id, code, customer_id, expires_at)
              select ${merchant.merchantId}, lpad(n::text, 6, '0'), ${crowd.customerId}, now() + interval '1 hour'
              from generate_series(1, 3000) n
              on conflict do nothing`.execute(t.db);
    await sql`insert into holds (merchant_id, customer_id, points, expires_at, entry_id, receipt)
              select ${merchant.merchantId}, ${crowd.customerId}, 1, now() + interval '1 hour', 1, '{}'
              from generate_series(1, 3000)`.execute(t.db);
    await sql`analyze`.execute(t.db);

    const item = (customerId: string, extra: Record<string, unknown>) => ({
      merchantId: merchant.merchantId,
      customerId,
      orderId: randomUUID(),
      code: null,
      idempotencyKey: randomUUID(),
      requestHash: 'h',
      outletId: merchant.outletId,
      deviceId: null,
      managerId: null,
      total: 5_000,
      eligibleAmount: 5_000,
      discount: 0,
      earnPoints: 50,
      earnBreakdown: [{ source: 'base', campaignId: null, name: 'Base', points: 50 }],
      redeemPoints: 0,
      earnRateBp: 100,
      tier: null,
      receipt: { total: 5_000 },
      lineEligible: null,
      pendingDays: 0,
      lifetimeDays: 365,
      holdId: null,
      ...extra,
    });
    const batch = JSON.stringify([
      item(earner.customerId, {}),
      item(coded.customerId, { code }),
      item(holder.customerId, { holdId: hold.id, redeemPoints: 30, discount: 30 }),
    ]);
    const TABLES = ['point_lots', 'customer_codes', 'holds'];
    // Rows of each table the transaction read (heap rows fetched, index entries returned), and how
    // many purchases went the one-by-one way.
    const READ = `select c.relname as table,
        (coalesce(pg_stat_get_xact_tuples_fetched(c.oid), 0) + coalesce(pg_stat_get_xact_tuples_returned(c.oid), 0)
         + (select coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0) from pg_index i
            where i.indrelid = c.oid))::int as rows
      from pg_class c where c.relname = any($1) and c.relkind = 'r'`;
    const commitBatch = async (client: pg.Client) => {
      await client.query('begin');
      try {
        await client.query(`set local track_functions = 'pl'`);
        const { rows } = await client.query<{ answers: { i: number; error?: unknown }[] }>(
          'select loyalty_commit_purchases($1::jsonb) as answers',
          [batch],
        );
        const read = await client.query<{ table: string; rows: number }>(READ, [TABLES]);
        const single = await client.query<{ n: number }>(
          `select coalesce(pg_stat_get_xact_function_calls('loyalty_commit_purchase'::regproc), 0)::int as n`,
        );
        return {
          errors: (rows[0]?.answers ?? []).filter((a) => a.error),
          read: Object.fromEntries(read.rows.map((r) => [r.table, r.rows])),
          single: single.rows[0]?.n,
        };
      } finally {
        await client.query('rollback');
      }
    };

    await withClient(async (client) => {
      // The plans are made now (each batch is rolled back).
      expect(await commitBatch(client)).toMatchObject({ errors: [], single: 0 });
      // An hour and a minute later, as far as the crowd's lots and holds are concerned.
      await sql`update point_lots set expires_at = now() - interval '1 minute' where customer_id = ${crowd.customerId}`.execute(
        t.db,
      );
      await sql`update holds set expires_at = now() - interval '1 minute' where customer_id = ${crowd.customerId}`.execute(
        t.db,
      );
      const later = await commitBatch(client);
      expect(later).toMatchObject({ errors: [], single: 0 });
      for (const table of TABLES) {
        expect(later.read[table], `${table}: ${JSON.stringify(later.read)}`).toBeLessThan(50);
      }
    });
  }, 60_000);
});
