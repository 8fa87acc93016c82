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
import { findReferenceViolations } from '../../../test/helpers/ledger.js';
import { findCustomerState } from '../customers/customers.service.js';
import { cancelHold, createHold } from './holds.service.js';
import { commitPurchase, refundPurchase } from './ledger.service.js';

// A customer deleted (with their merchant, by cascade) while a refund or a hold cancel waits on the
// customer's balance row: once the deletion commits, the waiting call finds nothing left and answers
// "not found" as it would a moment later, instead of failing on a row that vanished under it.

let t: TestDatabase;
let merchant: TestMerchant;
beforeAll(async () => {
  t = await createTestDatabase();
  merchant = await createTestMerchant(t.db);
});
afterAll(async () => {
  await t.drop();
});

/** Deletes the customer in a transaction of its own that commits only when `release` is called. */
async function deleteCustomerHeld(customerId: string): Promise<{ release: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: t.url });
  await client.connect();
  await client.query('begin');
  await client.query('delete from customers where id = $1', [customerId]);
  return {
    release: async () => {
      await client.query('commit');
      await client.end();
    },
  };
}

/** Resolves once a backend of this database waits on a row lock. */
async function waitForLockWait(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`.execute(t.db);
    if ((rows[0]?.n ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('no backend waited on a lock');
}

async function errorCodeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
  return 'no error';
}

describe('a customer deleted while a write waits on them', () => {
  it('a refund waiting on the balance row answers purchase_not_found', async () => {
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 0 });
    const customer = await findCustomerState(t.db, {
      merchantId: merchant.merchantId,
      ref: { customerId },
      tierWindowDays: null,
    });
    if (!customer) throw new Error('customer not found');
    const { purchase } = await commitPurchase(t.db, {
      merchantId: merchant.merchantId,
      rules: merchant.rules,
      customer,
      orderId: randomUUID(),
      receipt: { total: 50_000 },
      redeemPoints: 0,
      context: {},
    });
    const deletion = await deleteCustomerHeld(customerId);
    const refund = errorCodeOf(
      refundPurchase(t.db, {
        merchantId: merchant.merchantId,
        rules: merchant.rules,
        purchaseId: purchase.id,
        context: {},
      }),
    );
    await waitForLockWait();
    await deletion.release();
    expect(await refund).toBe('purchase_not_found');
  });

  it('a hold cancel waiting on the balance row answers hold_not_found', async () => {
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 500 });
    const hold = await createHold(t.db, {
      merchantId: merchant.merchantId,
      customerId,
      points: 100,
      ttlSeconds: 600,
      receipt: { total: 50_000 },
      context: {},
    });
    const deletion = await deleteCustomerHeld(customerId);
    const cancel = errorCodeOf(cancelHold(t.db, { merchantId: merchant.merchantId, holdId: hold.hold.id }));
    await waitForLockWait();
    await deletion.release();
    expect(await cancel).toBe('hold_not_found');
  });
});

// Since migration 0032 purchases, lots and entries have no foreign key to their customer (decision
// 006): a trigger deletes them with the customer, starting with the balance rows every ledger writer
// holds. Nothing of a deleted customer may be left behind, whichever of the two came first.
describe('a customer deleted while purchases commit', () => {
  /** A commit payload for loyalty_commit_purchase, as commitPurchase builds it (earn-only). */
  function payload(customerId: string, redeem = 0) {
    return {
      merchantId: merchant.merchantId,
      customerId,
      orderId: `order-${randomUUID()}`,
      total: 1_000,
      eligibleAmount: 1_000,
      discount: redeem,
      earnPoints: 10,
      earnBreakdown: [{ source: 'base', campaignId: null, name: 'Base', points: 10 }],
      redeemPoints: redeem,
      earnRateBp: 100,
      receipt: { total: 1_000 },
      pendingDays: 0,
      lifetimeDays: 365,
    };
  }

  async function leftOf(customerIds: string[]) {
    const { rows } = await sql<{ n: number }>`
      select (select count(*) from purchases where customer_id = any(${customerIds}::uuid[]))
           + (select count(*) from point_lots where customer_id = any(${customerIds}::uuid[]))
           + (select count(*) from ledger_entries where customer_id = any(${customerIds}::uuid[]))
           + (select count(*) from balances where customer_id = any(${customerIds}::uuid[])) as n`.execute(
      t.db,
    );
    return Number(rows[0]?.n);
  }

  it('a deletion that waited on a commit deletes what it wrote', async () => {
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 100 });
    const writer = new pg.Client({ connectionString: t.url });
    await writer.connect();
    try {
      await writer.query('begin');
      await writer.query('select loyalty_commit_purchase($1::jsonb)', [
        JSON.stringify(payload(customerId, 20)),
      ]);
      const deletion = sql`delete from customers where id = ${customerId}`.execute(t.db);
      await waitForLockWait();
      await writer.query('commit');
      await deletion;
    } finally {
      await writer.end();
    }
    expect(await leftOf([customerId])).toBe(0);
    expect(await findReferenceViolations(t.db)).toEqual([]);
  });

  it('a commit that waited on a deletion writes nothing and answers customer_not_found', async () => {
    const gone = await createTestCustomer(t.db, { merchant, points: 100 });
    const other = await createTestCustomer(t.db, { merchant, points: 100 });
    const deletion = await deleteCustomerHeld(gone.customerId);
    const alone = errorCodeOf(
      sql`select loyalty_commit_purchase(${JSON.stringify(payload(gone.customerId, 20))}::jsonb)`.execute(
        t.db,
      ),
    );
    // A batch with another customer: that purchase commits, the deleted customer's fails alone.
    const batch = sql<{ r: { i: number; result?: unknown; error?: { message: string } }[] }>`
      select loyalty_commit_purchases(${JSON.stringify([payload(gone.customerId), payload(other.customerId)])}::jsonb) as r`.execute(
      t.db,
    );
    await waitForLockWait();
    await deletion.release();
    expect(await alone).toBe('P0001');
    const answers = ((await batch).rows[0]?.r ?? []).sort((a, b) => a.i - b.i);
    expect(answers.map((answer) => answer.error?.message ?? 'committed')).toEqual([
      'customer_not_found',
      'committed',
    ]);
    expect(await leftOf([gone.customerId])).toBe(0);
    expect(await findReferenceViolations(t.db)).toEqual([]);
  });

  it('leaves nothing of customers deleted while batches, commits and the jobs run over them', {
    timeout: 120_000,
  }, async () => {
    const shop = await createTestMerchant(t.db);
    const customers = await Promise.all(
      Array.from(
        { length: 24 },
        async () => (await createTestCustomer(t.db, { merchant: shop, points: 500 })).customerId,
      ),
    );
    const doomed = customers.filter((_, i) => i % 2 === 0);
    const forShop = (customerId: string, redeem = 0) => ({
      ...payload(customerId, redeem),
      merchantId: shop.merchantId,
    });
    // What a commit may answer here: its customer deleted, or its points expired by the job.
    const expected = new Set(['customer_not_found', 'insufficient_points']);
    const failures: string[] = [];
    let running = true;
    const writers = Array.from({ length: 3 }, async (_, w) => {
      while (running) {
        const batch = [...customers]
          .sort(() => Math.random() - 0.5)
          .slice(0, 8)
          .map((id, i) => forShop(id, i % 2 ? 5 : 0));
        try {
          if (w === 0) {
            for (const item of batch.slice(0, 2)) {
              await sql`select loyalty_commit_purchase(${JSON.stringify(item)}::jsonb)`
                .execute(t.db)
                .catch((error) => {
                  if (!expected.has((error as Error).message)) throw error;
                });
            }
          } else {
            const { rows } = await sql<{ r: { error?: { message: string } }[] }>`
              select loyalty_commit_purchases(${JSON.stringify(batch)}::jsonb) as r`.execute(t.db);
            for (const answer of rows[0]?.r ?? []) {
              if (answer.error && !expected.has(answer.error.message)) failures.push(answer.error.message);
            }
          }
          await sql`select loyalty_expire_points(now() + interval '400 days', 50), loyalty_activate_points(now(), 50)`.execute(
            t.db,
          );
        } catch (error) {
          failures.push(String(error));
        }
      }
    });
    for (const customerId of doomed) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      await sql`delete from customers where id = ${customerId}`.execute(t.db);
    }
    running = false;
    await Promise.all(writers);
    expect(failures).toEqual([]);
    expect(await leftOf(doomed)).toBe(0);
    expect(await findReferenceViolations(t.db)).toEqual([]);
    // The customers left kept every purchase they made.
    expect(await leftOf(customers.filter((id) => !doomed.includes(id)))).toBeGreaterThan(12);
  });
});
