import { type Kysely, sql } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// A customer's lots and holds past their expiry are read as that customer's range of the index on
// (customer_id, expires_at), written (customer_id, expires_at) <= (customer, now()), by the
// customer_balances view and the ledger functions (loyalty_expire_customer says why); group commit's
// set-based part reads a hold by its id alone and consumes one-time codes among the batch's codes,
// in a statement of its own (loyalty_commit_plain_purchases); the activation job takes a batch of due
// pending lots, not of customers (loyalty_activate_points), and holds:release a batch of due holds
// (loyalty_release_expired_holds); the set-based part looks up Idempotency-Keys itself instead of
// calling loyalty_idempotency_find for each purchase. No schema change: the view is replaced
// with the same columns and the ledger functions are installed from src/modules/ledger/sql/.

/** The customer_balances view, with the customer's rows past their expiry read as `due(alias)`. */
function balancesView(due: (alias: string) => string): string {
  return `
create or replace view customer_balances as
select b.customer_id, b.merchant_id,
  (b.available
    - coalesce((select sum(l.remaining) from point_lots l
        where l.customer_id = b.customer_id and l.state = 'active' and l.remaining > 0 and ${due('l')}), 0)
    + coalesce((select sum(-m.points) from holds h
        join lot_moves m on m.entry_id = h.entry_id and m.kind = 'hold'
        join point_lots l on l.id = m.lot_id
        where h.customer_id = b.customer_id and h.status = 'active' and ${due('h')}
          and l.state = 'active' and (l.expires_at is null or l.expires_at > now())), 0))::bigint as available,
  b.pending, b.updated_at,
  (b.held - coalesce((select sum(h.points) from holds h
      where h.customer_id = b.customer_id and h.status = 'active' and ${due('h')}), 0))::bigint as held
from balances b`;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(balancesView((alias) => `(${alias}.customer_id, ${alias}.expires_at) <= (b.customer_id, now())`))
    .execute(db);
  await installLedgerFunctions(db);
}

// The view as it was; the functions installed answer the previous schema alike.
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(balancesView((alias) => `${alias}.expires_at <= now()`)).execute(db);
}
