import { type Kysely, sql } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// The hot path of the integration API (docs/performance.md, "Write path"). Expand only (decision
// 003): the previous release keeps working on this schema.
// - loyalty_customer_state: the customer read of every resolve, quote and commit as a function, so
//   its plans are prepared once per connection instead of planned for every request (planning the
//   join with customer_balances cost more than running it).
// - balances keep half of each page free (fillfactor 50): a balance update then finds room on its
//   own page and is a HOT update (no new index entry, no move to another page). Rows move to pages
//   with room at their next non-HOT update; no rewrite of the table is needed.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
  await sql.raw('alter table balances set (fillfactor = 50)').execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
alter table balances reset (fillfactor);
drop function if exists loyalty_customer_state(uuid, uuid, text, text, integer);
`)
    .execute(db);
}
