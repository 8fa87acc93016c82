import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { createTestCustomer, createTestMerchant } from '../../test/helpers/factories.js';
import { DOMAINS } from './migrations/0025_domain_checks.js';
import { PURCHASE_AMOUNTS } from './migrations/0027_purchase_amounts.js';

// The write path's one-column checks live on domains (migration 0025): each column takes its
// domain, the domain refuses what the table's CHECK refused, and no table CHECK is left to parse
// for it on every statement.

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase({ poolMax: 2 });
});
afterAll(async () => {
  await t?.drop();
});

/** A value each domain refuses and one it takes. */
const SAMPLES: Record<string, { refused: string; taken: string }> = {
  loyalty_points: { refused: '-1', taken: '0' },
  loyalty_points_positive: { refused: '0', taken: '1' },
  loyalty_points_change: { refused: '0', taken: '-5' },
  loyalty_order_id: { refused: '', taken: 'A-1' },
  loyalty_amount: { refused: '-1', taken: '0' },
  loyalty_amount_positive: { refused: '0', taken: '1' },
  loyalty_purchase_status: { refused: 'void', taken: 'refunded' },
  loyalty_lot_source: { refused: 'gift', taken: 'bonus' },
  loyalty_entry_bucket: { refused: 'spent', taken: 'held' },
  loyalty_entry_kind: { refused: 'gift', taken: 'release' },
  loyalty_outbox_status: { refused: 'lost', taken: 'dead' },
  loyalty_outbox_target: { refused: 'email', taken: 'telegram_staff' },
  loyalty_customer_code: { refused: '12345', taken: '012345' },
};

describe('the write path checks as domains', () => {
  it.each(DOMAINS.map((d) => [d.name, d] as const))(
    '%s refuses what its columns refused',
    async (name, domain) => {
      const sample = SAMPLES[name];
      expect(sample, `a sample for ${name}`).toBeDefined();
      if (!sample) return;
      await sql.raw(`select '${sample.taken}'::${name}`).execute(t.db);
      await expect(sql.raw(`select '${sample.refused}'::${name}`).execute(t.db)).rejects.toMatchObject({
        code: '23514',
      });
      for (const { table, column, constraint } of domain.columns) {
        const { rows } = await sql<{ type: string; stale: number }>`
        select format_type(a.atttypid, a.atttypmod) as type,
          (select count(*) from pg_constraint c where c.conrelid = a.attrelid and c.conname = ${constraint})::int as stale
        from pg_attribute a where a.attrelid = ${table}::regclass and a.attname = ${column}`.execute(t.db);
        expect(rows[0], `${table}.${column}`).toEqual({ type: name, stale: 0 });
      }
    },
  );

  it('keeps the checks over two columns of the tables it changed', async () => {
    const { rows } = await sql<{ name: string }>`
      select conname as name from pg_constraint
      where conrelid in ('purchases'::regclass, 'point_lots'::regclass) and contype = 'c' and cardinality(conkey) > 1
      order by conname`.execute(t.db);
    expect(rows.map((r) => r.name)).toEqual([
      'point_lots_check',
      'purchases_check',
      'purchases_check1',
      'purchases_check2',
      'purchases_check3',
      'purchases_check4',
    ]);
  });

  it('a write that breaks one is refused', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await expect(
      sql`update balances set available = available - available - 1 where customer_id = ${customerId}`.execute(
        t.db,
      ),
    ).rejects.toMatchObject({ code: '23514' });
    await expect(
      sql`insert into ledger_entries (merchant_id, customer_id, kind, bucket, points)
          values (${merchant.merchantId}, ${customerId}, 'earn', 'available', 0)`.execute(t.db),
    ).rejects.toMatchObject({ code: '23514' });
  });

  it("the purchase's amounts take loyalty_amount, and their checks keep only the comparison (0027)", async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    const { rows } = await sql<{ id: string }>`
      select (loyalty_commit_purchase(jsonb_build_object('merchantId', ${merchant.merchantId}::uuid,
        'customerId', ${customerId}::uuid, 'orderId', 'amounts-1', 'total', 1000, 'eligibleAmount', 1000,
        'discount', 0, 'earnPoints', 1, 'redeemPoints', 0, 'earnRateBp', 500,
        'receipt', jsonb_build_object('total', 1000), 'pendingDays', 0))->'purchase'->>'id') as id`.execute(
      t.db,
    );
    const id = rows[0]?.id;
    expect(id).toBeDefined();
    for (const { column, constraint } of PURCHASE_AMOUNTS) {
      const { rows: found } = await sql<{ type: string; definition: string }>`
        select format_type(a.atttypid, a.atttypmod) as type,
          (select pg_get_constraintdef(c.oid) from pg_constraint c
           where c.conrelid = a.attrelid and c.conname = ${constraint}) as definition
        from pg_attribute a where a.attrelid = 'purchases'::regclass and a.attname = ${column}`.execute(t.db);
      expect(found[0]?.type, column).toBe('loyalty_amount');
      expect(found[0]?.definition, constraint).not.toContain('>= 0');
      expect(found[0]?.definition, constraint).toContain('<=');
      for (const value of ['-1', '1001']) {
        await expect(
          sql.raw(`update purchases set ${column} = ${value} where id = '${id}'`).execute(t.db),
          `${column} = ${value}`,
        ).rejects.toMatchObject({ code: '23514' });
      }
    }
  });
});
