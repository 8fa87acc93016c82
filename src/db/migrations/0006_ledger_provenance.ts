import { type Kysely, sql } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Lot-level provenance (docs/decisions/002-ledger-provenance.md): every change of a lot after its
// creation is a move of a ledger entry (lot_moves), so a lot's remaining is its points plus the sum
// of its moves, and a refund knows which
// lots its purchase's redeemed points came from and where its earned points went. Receipt lines
// can be refunded. Points past their expiry are gone at once (customer_balances). Ledger history
// cannot be truncated. The ledger functions are installed from src/modules/ledger/sql/.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
-- A lot starts with its points (the entry that created it names it); every later change of it is
-- a move, so remaining = points + the sum of its moves. entry_id is null only for the opening move
-- of a lot that existed before moves were recorded (what had left it by then).
-- Moves go with their lot (and so with their customer and merchant). entry_id and purchase_id are
-- not foreign keys: a check per move would cost every redeem a lookup per lot on the hottest path,
-- and the rows they name belong to the same customer, written in the same transaction.
create table lot_moves (
  id bigint generated always as identity primary key,
  entry_id bigint,
  lot_id bigint not null references point_lots (id) on delete cascade,
  kind text not null check (kind in ('opening', 'earn', 'redeem', 'refund_return', 'refund_revoke', 'expire', 'adjust')),
  -- The purchase the move is for: its redeem or return, or the purchase a revoke is for.
  purchase_id uuid,
  points bigint not null check (points <> 0),
  created_at timestamptz not null default now()
);
create index lot_moves_lot_idx on lot_moves (lot_id, kind);
create index lot_moves_purchase_idx on lot_moves (purchase_id, kind) where purchase_id is not null;
insert into lot_moves (lot_id, kind, purchase_id, points)
select id, 'opening', purchase_id, remaining - points from point_lots where remaining <> points;

-- Refunds by receipt line: what each line had refunded, whether it could earn and be paid with
-- points (fixed at commit, since the programme's excluded categories may change later).
alter table purchases
  add column refunded_eligible bigint not null default 0 check (refunded_eligible >= 0),
  add column refunded_lines bigint[],
  add column line_eligible boolean[];
update purchases set refunded_eligible = case when refunded_amount >= total then eligible_amount
  else floor(eligible_amount::numeric * refunded_amount / nullif(total, 0))::bigint end
where refunded_amount > 0;
create index purchases_unrecovered_idx on purchases (customer_id) where unrecovered_points > 0;

-- The balance as customers and tills see it: points past their expiry are gone at once, before the
-- expiry job writes their entries (every write expires them first, loyalty_expire_customer).
create view customer_balances as
select b.customer_id, b.merchant_id,
  b.available - coalesce((select sum(l.remaining) from point_lots l
    where l.customer_id = b.customer_id and l.state = 'active' and l.remaining > 0 and l.expires_at <= now()),
    0)::bigint as available,
  b.pending, b.updated_at
from balances b;

-- Ledger history is immutable: no UPDATE, no DELETE and no TRUNCATE. Rows go only with their
-- merchant (or customer), by the foreign keys' cascade.
drop trigger ledger_entries_no_delete on ledger_entries;
create trigger ledger_entries_no_delete before delete on ledger_entries
  for each row when (pg_trigger_depth() = 0) execute function ledger_entries_immutable();
create trigger ledger_entries_no_truncate before truncate on ledger_entries
  for each statement execute function ledger_entries_immutable();
create trigger lot_moves_no_update before update on lot_moves
  for each row execute function ledger_entries_immutable();
create trigger lot_moves_no_delete before delete on lot_moves
  for each row when (pg_trigger_depth() = 0) execute function ledger_entries_immutable();
create trigger lot_moves_no_truncate before truncate on lot_moves
  for each statement execute function ledger_entries_immutable();

drop function loyalty_take_points(uuid, bigint);
`)
    .execute(db);
  await installLedgerFunctions(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop function if exists loyalty_settle_debts(uuid, uuid),
  loyalty_land_points(uuid, uuid, bigint, bigint, text, uuid, uuid),
  loyalty_expire_customer(uuid, uuid, timestamptz),
  loyalty_take_points(uuid, uuid, bigint, text, uuid, uuid, text),
  loyalty_move(bigint, bigint, bigint, text, uuid),
  loyalty_entry(uuid, uuid, text, text, bigint, uuid, uuid, bigint, text);
drop view if exists customer_balances;
drop trigger if exists ledger_entries_no_truncate on ledger_entries;
drop table if exists lot_moves;
drop index if exists purchases_unrecovered_idx;
alter table purchases drop column if exists refunded_eligible, drop column if exists refunded_lines,
  drop column if exists line_eligible;
`)
    .execute(db);
}
