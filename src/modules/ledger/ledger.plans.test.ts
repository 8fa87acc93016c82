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

// Every read of a customer's lots and holds past their expiry keeps one plan per connection (the
// functions force generic plans, or PostgreSQL settles on one after five calls), made with the
// statistics of the moment, when lots and holds past their expiry are few (the jobs take them twice
// an hour, holds every 20 seconds). Time passing makes rows due without changing the statistics: the
// lots of a campaign granted to everyone expire at the same instant. Each read must stay on the
// customer's own rows: a plan that walked the index of every due lot or hold of all merchants would
// cost each resolve and commit as much as there are due rows until the jobs catch up.
describe('reads planned while little was due', () => {
  let earner: string;
  let coded: string;
  let holder: string;
  /** Other customers of the merchant, whose lots and holds become due. */
  const crowd: string[] = [];
  let code: string;
  let holdId: string;

  beforeAll(async () => {
    [earner, coded, holder] = [
      (await createTestCustomer(t.db, { merchant })).customerId,
      (await createTestCustomer(t.db, { merchant })).customerId,
      (await createTestCustomer(t.db, { merchant, points: 200 })).customerId,
    ];
    for (let i = 0; i < 100; i++) crowd.push((await createTestCustomer(t.db, { merchant })).customerId);
    ({ code } = await issueCustomerCode(t.db, {
      merchantId: merchant.merchantId,
      customerId: coded,
      ttlSeconds: 3_600,
    }));
    holdId = (
      await createHold(t.db, {
        merchantId: merchant.merchantId,
        customerId: holder,
        points: 30,
        ttlSeconds: 600,
        receipt: { total: 5_000 },
        context: {},
      })
    ).hold.id;
    // The crowd's 3,000 lots (30 each) and 300 holds (3 each), none due yet, and 3,000 live codes;
    // then the statistics, as autovacuum takes them.
    await sql`insert into point_lots (merchant_id, customer_id, source, points, remaining, state, available_at,
                                      expires_at)
              select ${merchant.merchantId}, c, 'adjust', 1, 1, 'active', now() - interval '2 days',
                     now() + interval '1 hour'
              from unnest(${crowd}::uuid[]) c, generate_series(1, 30)`.execute(t.db);
    await sql`insert into customer_codes (merchant_id, code, customer_id, expires_at)
              select ${merchant.merchantId}, lpad((n * 100 + c.i)::text, 6, '0'), c.id, now() + interval '1 hour'
              from unnest(${crowd}::uuid[]) with ordinality c(id, i), generate_series(1, 30) n
              on conflict do nothing`.execute(t.db);
    await sql`insert into holds (merchant_id, customer_id, points, expires_at, entry_id, receipt)
              select ${merchant.merchantId}, c, 1, now() + interval '1 hour', 1, '{}'
              from unnest(${crowd}::uuid[]) c, generate_series(1, 3)`.execute(t.db);
    await sql`analyze`.execute(t.db);
  }, 60_000);

  /** A loyalty_commit_purchase argument: an earn-only purchase with an Idempotency-Key. */
  const item = (customerId: string, extra: Record<string, unknown> = {}) => ({
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
  const TABLES = ['point_lots', 'customer_codes', 'holds'];
  // Rows of each table the transaction read: heap rows fetched, index entries returned.
  const READ = `select c.relname as table,
      (coalesce(pg_stat_get_xact_tuples_fetched(c.oid), 0) + coalesce(pg_stat_get_xact_tuples_returned(c.oid), 0)
       + (select coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0) from pg_index i
          where i.indrelid = c.oid))::int as rows
    from pg_class c where c.relname = any($1) and c.relkind = 'r'`;

  /** Rows of `table` read so far by the transaction of `client`. */
  const rowsRead = async (client: pg.Client, table: string) =>
    (await client.query<{ table: string; rows: number }>(READ, [[table]])).rows[0]?.rows ?? 0;

  /** Runs `work` in a transaction of `client` that is rolled back. */
  const rolledBack = async <T>(client: pg.Client, work: () => Promise<T>): Promise<T> => {
    await client.query('begin');
    try {
      return await work();
    } finally {
      await client.query('rollback');
    }
  };

  /** A group commit of an earn-only purchase, one with a live code and one redeeming a hold. */
  const groupCommit = () =>
    JSON.stringify([
      item(earner),
      item(coded, { code }),
      item(holder, { holdId, redeemPoints: 30, discount: 30 }),
    ]);

  it.each([
    {
      name: 'a group commit (set-based: a code, a hold)',
      sqlText: 'select loyalty_commit_purchases($1::jsonb) as answer',
      params: () => [groupCommit()],
    },
    {
      name: 'a commit alone',
      sqlText: 'select loyalty_commit_purchase($1::jsonb) as answer',
      params: () => [JSON.stringify(item(earner))],
    },
    {
      name: 'a resolve',
      sqlText: 'select to_jsonb(s) as answer from loyalty_customer_state($1, $2, null, null, null) s',
      params: () => [merchant.merchantId, earner],
    },
    {
      name: 'the expiry of a customer’s due lots',
      sqlText: 'select loyalty_expire_customer($1, $2, now()) as answer',
      params: () => [merchant.merchantId, earner],
    },
    {
      name: 'the release of a customer’s due holds',
      sqlText: 'select loyalty_release_holds($1, $2, now()) as answer',
      params: () => [merchant.merchantId, earner],
    },
  ])(
    '$name reads only its customers’ rows when many become due',
    async ({ sqlText, params }) => {
      const run = (client: pg.Client) =>
        rolledBack(client, async () => {
          const { rows } = await client.query<{ answer: unknown }>(sqlText, params());
          const read = await client.query<{ table: string; rows: number }>(READ, [TABLES]);
          return {
            answer: JSON.stringify(rows[0]?.answer ?? null),
            read: Object.fromEntries(read.rows.map((r) => [r.table, r.rows])) as Record<string, number>,
          };
        });
      await sql`update point_lots set expires_at = now() + interval '1 hour' where customer_id = any(${crowd})`.execute(
        t.db,
      );
      await sql`update holds set expires_at = now() + interval '1 hour' where customer_id = any(${crowd})`.execute(
        t.db,
      );
      await withClient(async (client) => {
        // The plans are made now: six calls, each rolled back.
        for (let i = 0; i < 6; i++) await run(client);
        // An hour and a minute later, as far as the crowd's lots and holds are concerned.
        await sql`update point_lots set expires_at = now() - interval '1 minute' where customer_id = any(${crowd})`.execute(
          t.db,
        );
        await sql`update holds set expires_at = now() - interval '1 minute' where customer_id = any(${crowd})`.execute(
          t.db,
        );
        const later = await run(client);
        expect(later.answer).not.toContain('"error"');
        for (const table of TABLES) {
          expect(later.read[table], `${table}: ${JSON.stringify(later.read)}`).toBeLessThan(100);
        }
      });
    },
    60_000,
  );

  // The activation job takes a batch of the soonest due pending lots, as the expiry job does: picked
  // by customer and then read again by customer, each customer's read had no index of its own to use
  // and walked every due pending lot of all merchants (10 ms a customer with 100,000 due).
  it('the activation job reads the due pending lots it activates, not all of them per customer', async () => {
    await withClient((client) =>
      rolledBack(client, async () => {
        // The crowd's 300 pending lots whose pending period is over (3 each).
        await client.query(
          `insert into point_lots (merchant_id, customer_id, source, points, remaining, state, available_at)
           select $1, c, 'adjust', 1, 1, 'pending', now() - interval '1 minute'
           from unnest($2::uuid[]) c, generate_series(1, 3)`,
          [merchant.merchantId, crowd],
        );
        await client.query('update balances set pending = pending + 3 where customer_id = any($1)', [crowd]);
        const before = await rowsRead(client, 'point_lots');
        const { rows } = await client.query<{ r: { customers: number; points: number; scanned: number } }>(
          'select loyalty_activate_points(now(), 10) as r',
        );
        const read = (await rowsRead(client, 'point_lots')) - before;
        expect(rows[0]?.r).toMatchObject({ points: 10, scanned: 10 });
        expect(read, `point_lots rows read: ${read}`).toBeLessThan(100);
      }),
    );
  });

  // The holds:release job likewise takes a batch of the soonest due holds; picking customers, each
  // call read every due hold of all merchants.
  it('the holds:release job reads the due holds it releases, not all of them per call', async () => {
    // The crowd's 300 holds past their expiry (3 each, 1 point each), without the row versions the
    // cases above left (each changed every crowd hold's expiry).
    await sql`update holds set expires_at = now() - interval '1 minute' where customer_id = any(${crowd})`.execute(
      t.db,
    );
    await sql`vacuum holds`.execute(t.db);
    await withClient((client) =>
      rolledBack(client, async () => {
        // The crowd's lots not due (their points are not in the balances), its holds' points held.
        await client.query(
          `update point_lots set expires_at = now() + interval '1 hour' where customer_id = any($1)`,
          [crowd],
        );
        await client.query('update balances set held = held + 3 where customer_id = any($1)', [crowd]);
        const before = await rowsRead(client, 'holds');
        const { rows } = await client.query<{ r: { customers: number; scanned: number } }>(
          'select loyalty_release_expired_holds(now(), 1) as r',
        );
        const read = (await rowsRead(client, 'holds')) - before;
        // One due hold taken, and with it every due hold of its customer.
        expect(rows[0]?.r).toMatchObject({ scanned: 1, customers: 1, points: 3 });
        expect(read, `holds rows read: ${read}`).toBeLessThan(100);
      }),
    );
  });

  // The group commit above is the set-based part's: no item of it committed alone.
  it('the set-based part commits the group commit above', async () => {
    await withClient((client) =>
      rolledBack(client, async () => {
        await client.query(`set local track_functions = 'pl'`);
        const { rows } = await client.query<{ answer: { error?: unknown }[] }>(
          'select loyalty_commit_purchases($1::jsonb) as answer',
          [groupCommit()],
        );
        expect((rows[0]?.answer ?? []).filter((a) => a.error)).toEqual([]);
        const single = await client.query<{ n: number }>(
          `select coalesce(pg_stat_get_xact_function_calls('loyalty_commit_purchase'::regproc), 0)::int as n`,
        );
        expect(single.rows[0]?.n).toBe(0);
      }),
    );
  });
});
