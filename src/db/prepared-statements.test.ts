import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { createTestCustomer, createTestMerchant, type TestMerchant } from '../../test/helpers/factories.js';
import { findCustomerState } from '../modules/customers/customers.service.js';
import { createDatabase, type Database } from './database.js';

// Statements marked with prepared() (DATABASE_PREPARED_STATEMENTS): a pool of one connection, so
// pg_prepared_statements (per session) shows what that connection prepared.

let t: TestDatabase;
let merchant: TestMerchant;
let ids: string[];
const pools: Database[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ poolMax: 2 });
  merchant = await createTestMerchant(t.db);
  ids = (await Promise.all([0, 1, 2].map(() => createTestCustomer(t.db, { merchant })))).map(
    (c) => c.customerId,
  );
});
afterAll(async () => {
  await Promise.all(pools.map((db) => db.destroy()));
  await t?.drop();
});

function onePool(preparedStatements?: boolean): Database {
  const { db } = createDatabase({ connectionString: t.url, max: 1, preparedStatements });
  pools.push(db);
  return db;
}

async function preparedOn(db: Database) {
  const { rows } = await sql<{ name: string; statement: string }>`
    select name, statement from pg_prepared_statements order by name`.execute(db);
  return rows;
}

async function findEach(db: Database) {
  const found = [];
  for (const customerId of ids) {
    const state = await findCustomerState(db, {
      merchantId: merchant.merchantId,
      ref: { customerId },
      tierWindowDays: null,
    });
    found.push(state?.id);
  }
  return found;
}

describe('named prepared statements', () => {
  it('prepares a marked statement once per connection and binds each call its own values', async () => {
    const db = onePool();
    expect(await findEach(db)).toEqual(ids);
    expect(await findEach(db)).toEqual(ids);
    const statements = await preparedOn(db);
    // One statement for six calls; the unmarked statements (this very query) stay unnamed.
    expect(statements).toHaveLength(1);
    expect(statements[0]?.name).toMatch(/^loyalty_[0-9a-f]{24}$/);
    expect(statements[0]?.statement).toContain('loyalty_customer_state');
  });

  it('gives one text the same name on every connection', async () => {
    const [a, b] = [onePool(), onePool()];
    await findEach(a);
    await findEach(b);
    expect((await preparedOn(a)).map((s) => s.name)).toEqual((await preparedOn(b)).map((s) => s.name));
  });

  it('sends marked statements unnamed when switched off', async () => {
    const db = onePool(false);
    expect(await findEach(db)).toEqual(ids);
    expect(await preparedOn(db)).toEqual([]);
  });
});
