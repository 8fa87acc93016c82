import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScaleData, type ScaleDataSummary } from '../../bench/lib/scale-data.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { findLedgerViolations, findProvenanceViolations } from '../helpers/ledger.js';

// `npm run bench:data` at a small scale: the generated history keeps every ledger invariant and has
// the size asked for.

let t: TestDatabase;
let summary: ScaleDataSummary;
let keysBefore: unknown[];

/** Every index and constraint of the public schema, as the catalog defines them. */
async function schemaKeys(db: TestDatabase['db']) {
  const { rows } = await sql<{ name: string; definition: string; is_valid: boolean }>`
    select indexrelid::regclass::text as name, pg_get_indexdef(indexrelid) as definition, indisvalid as is_valid
    from pg_index i join pg_class c on c.oid = i.indrelid
    where c.relnamespace = 'public'::regnamespace
    union all
    select conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid), convalidated
    from pg_constraint where connamespace = 'public'::regnamespace
    order by 1, 2`.execute(db);
  return rows;
}

beforeAll(async () => {
  t = await createTestDatabase({ poolMax: 5 });
  keysBefore = await schemaKeys(t.db);
  summary = await loadScaleData(t.db, {
    connectionString: t.url,
    customers: 2000,
    entries: 20_000,
    days: 730,
    validateKeys: true,
  });
}, 120_000);

afterAll(async () => {
  await t?.drop();
});

describe('bench:data generator', () => {
  it('writes the customers, balances and about the ledger entries asked for', async () => {
    const count = async (table: string) =>
      Number(
        (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(t.db)).rows[0]
          ?.n,
      );
    expect(await count('customers')).toBe(2000);
    expect(await count('balances')).toBe(2000);
    const entries = await count('ledger_entries');
    expect(entries).toBe(summary.rows.ledger_entries);
    expect(entries).toBeGreaterThan(16_000);
    expect(entries).toBeLessThan(24_000);
    expect(await count('purchases')).toBe(summary.rows.purchases);
    expect(summary.rows.lot_moves).toBeGreaterThan(0);
    expect(summary.rows.refunds).toBeGreaterThan(0);
    expect(summary.merchants).toHaveLength(3);
  });

  it('spreads the history over two years, with lots due for the expiry job in the last day', async () => {
    const { rows } = await sql<{ days: number; due: number; kinds: string[] }>`
      select (select extract(day from max(created_at) - min(created_at))::int from ledger_entries) as days,
        (select count(*)::int from point_lots where state = 'active' and remaining > 0
           and expires_at <= now()) as due,
        (select array_agg(distinct kind::text order by kind::text) from ledger_entries) as kinds
    `.execute(t.db);
    expect(rows[0]?.days).toBeGreaterThan(600);
    expect(rows[0]?.due).toBeGreaterThan(0);
    expect(rows[0]?.kinds).toEqual(['activate', 'earn', 'expire', 'redeem', 'refund_revoke']);
  });

  it('keeps every ledger invariant: balances, entries, lots and their moves add up', async () => {
    expect(await findLedgerViolations(t.db)).toEqual([]);
    expect(await findProvenanceViolations(t.db)).toEqual([]);
  });

  it('loads into bare tables and builds every index and key again, valid', async () => {
    expect(await schemaKeys(t.db)).toEqual(keysBefore);
  });

  it('leaves identity sequences past the rows it wrote', async () => {
    const { rows } = await sql<{ id: number }>`
      insert into point_lots (merchant_id, customer_id, source, points, remaining, state, available_at)
      select merchant_id, customer_id, 'adjust', 1, 1, 'active', now() from balances limit 1
      returning id`.execute(t.db);
    const { rows: max } = await sql<{ id: number }>`select max(id)::bigint as id from point_lots`.execute(
      t.db,
    );
    expect(rows[0]?.id).toBe(max[0]?.id);
  });
});
