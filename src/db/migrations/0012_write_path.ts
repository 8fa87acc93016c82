import { type Kysely, sql } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// A leaner write per purchase (docs/performance.md, "Write path"). Expand only (decision 003): the
// previous release keeps working on this schema.
// - A purchase keeps its Idempotency-Key, request hash and the balance of its answer on its own row,
//   so the commit writes no idempotency_keys record (a heap row with the whole answer and two index
//   entries); loyalty_idempotency_find looks in both places, so keys stay one namespace per merchant
//   and records written before this migration still replay.
// - Purchase and refund ids are time-ordered (loyalty_uuidv7): their primary keys grow at the right
//   edge instead of at a random page.
// - ledger_entries_merchant_created_idx goes: no query reads entries by merchant and time (the
//   portal's lists, dashboard and export read purchases), and every entry paid an index insert for
//   it. Entries are read by customer (ledger_entries_customer_idx); deleting a merchant, which
//   cascades through its customers first, is the only statement left that filters on merchant_id.
// The ledger functions are installed from src/modules/ledger/sql/ (loyalty_commit_purchase: one
// update locks and changes the balance of an earn-only purchase).

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
  await sql
    .raw(`
alter table purchases
  add column idempotency_key text,
  add column request_hash text,
  add column balance_available bigint,
  add column balance_pending bigint;
create unique index purchases_idempotency_key_idx on purchases (merchant_id, idempotency_key)
  where idempotency_key is not null;
alter table purchases alter column id set default loyalty_uuidv7();
alter table refunds alter column id set default loyalty_uuidv7();
drop index if exists ledger_entries_merchant_created_idx;
`)
    .execute(db);
}

// The purchase columns stay: the installed ledger functions write and read them.
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
create index if not exists ledger_entries_merchant_created_idx on ledger_entries (merchant_id, created_at);
alter table refunds alter column id set default gen_random_uuid();
alter table purchases alter column id set default gen_random_uuid();
`)
    .execute(db);
}
