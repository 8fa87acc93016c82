import { type Kysely, sql } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';
import { dropForeignKey } from './0020_write_path_keys.js';

// The customer keys of the ledger's three append-only tables (decision 006, docs/performance.md,
// "The customer keys"). Each insert into purchases, point_lots or ledger_entries checked its
// customer_id by locking the customer's row (FOR KEY SHARE): a lock, a WAL record and a dirtied page
// of customers per row, 7-10% of a commit's instructions. What they guaranteed is kept another way:
// - Deleting a customer (alone, or with their merchant by cascade) deletes their purchases, lots and
//   entries by trigger, once per statement, starting with their balance rows.
// - No row is written for a customer being deleted: every ledger function that writes these tables
//   locks the customer's balance row first and gives up when it is gone (the jobs now skip such a
//   customer: `continue when not found`). The trigger deletes the balance rows before the rest, so it
//   waits for the writers holding them, then deletes what they wrote; writers that come after find no
//   balance row.
// Expand only (decision 003): the previous release writes the same rows through the same functions.

const TABLES = ['purchases', 'point_lots', 'ledger_entries'] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of TABLES) await dropForeignKey(db, table, 'customer_id');
  await sql
    .raw(`
create or replace function customers_delete_ledger_fn() returns trigger language plpgsql as $fn$
begin
  -- The balance rows first: this waits for the ledger writers that hold them and makes those that
  -- come after find none; each statement below then sees what the writers before it committed.
  delete from balances where customer_id in (select id from gone);
  delete from ledger_entries where customer_id in (select id from gone);
  delete from point_lots where customer_id in (select id from gone);
  delete from purchases where customer_id in (select id from gone);
  return null;
end $fn$;
create trigger customers_delete_ledger after delete on customers
  referencing old table as gone
  for each statement execute function customers_delete_ledger_fn();
`)
    .execute(db);
  await installLedgerFunctions(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop trigger if exists customers_delete_ledger on customers;
drop function if exists customers_delete_ledger_fn();
`)
    .execute(db);
  // Back as NOT VALID: rows written meanwhile are not checked, new rows are.
  for (const table of TABLES) {
    await sql
      .raw(
        `alter table ${table} add foreign key (customer_id) references customers (id) on delete cascade not valid`,
      )
      .execute(db);
  }
}
