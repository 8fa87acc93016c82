import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import { createTestCustomer, createTestMerchant } from '../../../test/helpers/factories.js';
import { adjustPoints } from './ledger.service.js';

// Row locks the ledger takes: only what an operation changes, so parallel work on a customer's other
// lots (the expiry job, a refund) is not held up and no lock is a WAL record for nothing.

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('taking points from lots', () => {
  it('locks only the lots it takes from, however many the customer has', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 100 });
    for (let i = 0; i < 11; i++) {
      await adjustPoints(t.db, {
        merchantId: merchant.merchantId,
        customerId,
        points: 100,
        reason: 'lot',
        rules: merchant.rules,
      });
    }
    const unlocked = async () => {
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from (
          select id from point_lots where customer_id = ${customerId} and state = 'active' for update skip locked
        ) l`.execute(t.db);
      return rows[0]?.n;
    };
    expect(await unlocked()).toBe(12);

    await t.db
      .transaction()
      .execute(async (trx) => {
        await sql`select 1 from balances where customer_id = ${customerId} for update`.execute(trx);
        // 150 points: all of the soonest lot and half of the next.
        await sql`select loyalty_take_points(${merchant.merchantId}, ${customerId}, 150, 'adjust', null, null, 'test')`.execute(
          trx,
        );
        expect(await unlocked()).toBe(10);
        throw new Error('rollback');
      })
      .catch((error: Error) => {
        if (error.message !== 'rollback') throw error;
      });
  });
});
