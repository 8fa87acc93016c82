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
