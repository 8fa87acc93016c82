import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import { functionBody, LEDGER_FUNCTIONS, readLedgerFunction } from './ledger.sql.js';

// The ledger's stored functions are read in src/modules/ledger/sql/: the migrated database must run
// exactly those sources (a change to a .sql file needs a migration that installs it).

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('ledger functions', () => {
  it('installed in the database equal their source files', async () => {
    const { rows } = await sql<{ name: string; body: string }>`
      select proname as name, prosrc as body from pg_proc
      where proname like 'loyalty\\_%' and pronamespace = 'public'::regnamespace
      order by proname`.execute(t.db);
    expect(rows.map((r) => r.name)).toEqual([...LEDGER_FUNCTIONS].sort());
    for (const row of rows) {
      const name = row.name as (typeof LEDGER_FUNCTIONS)[number];
      expect(row.body, `${name}.sql differs from the installed function`).toBe(
        functionBody(readLedgerFunction(name)),
      );
    }
  });
});
