import { type Kysely, sql } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Holds: points reserved before payment (docs/decisions/004-holds.md). Expand only (decision 003):
// the previous release keeps working on this schema (new columns have defaults, the view keeps its
// columns and adds one at the end, the ledger functions keep their signatures).
// - balances.held: the third bucket. A hold moves points from available to held with ledger
//   entries (kind 'hold'; 'release' when they come back), so the entries of each bucket still add
//   up to the stored balance. The points leave their lots with a move per lot (kind 'hold'): those
//   lots are the hold's reservation, and a release lands them back there.
// - holds: one row per hold; status active -> committed | cancelled | expired, once.
// - purchases.balance_held: the held points in the stored answer of a commit.
// - customer_balances shows held, and an active hold past its expiry as released already (the
//   holds:release job and every write release it for real).

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
alter table balances add column held bigint not null default 0 check (held >= 0);
alter table purchases add column balance_held bigint;

alter table ledger_entries drop constraint ledger_entries_kind_check,
  add constraint ledger_entries_kind_check check (kind in ('earn', 'redeem', 'refund_return', 'refund_revoke',
    'expire', 'activate', 'adjust', 'bonus', 'hold', 'release'));
alter table ledger_entries drop constraint ledger_entries_bucket_check,
  add constraint ledger_entries_bucket_check check (bucket in ('available', 'pending', 'held'));
alter table lot_moves drop constraint lot_moves_kind_check,
  add constraint lot_moves_kind_check check (kind in ('opening', 'earn', 'redeem', 'refund_return',
    'refund_revoke', 'expire', 'adjust', 'hold', 'release'));
-- A hold's lots: the moves of its reservation entry.
create index lot_moves_hold_entry_idx on lot_moves (entry_id) where kind = 'hold';

create table holds (
  id uuid primary key default loyalty_uuidv7(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  customer_id uuid not null references customers (id) on delete cascade,
  points bigint not null check (points > 0),
  status text not null default 'active' check (status in ('active', 'committed', 'cancelled', 'expired')),
  expires_at timestamptz not null,
  -- The ledger entry that took the points from available; its moves name the lots they came from.
  entry_id bigint not null,
  -- The purchase that redeemed the points (status committed).
  purchase_id uuid references purchases (id) on delete cascade,
  receipt jsonb not null,
  outlet_id uuid references outlets (id),
  device_id uuid references devices (id),
  manager_id uuid references managers (id),
  created_at timestamptz not null default now(),
  released_at timestamptz,
  check ((status = 'active') = (released_at is null))
);
create index holds_customer_active_idx on holds (customer_id, expires_at) where status = 'active';
create index holds_due_idx on holds (expires_at) where status = 'active';
create index holds_merchant_idx on holds (merchant_id, created_at);

create or replace view customer_balances as
select b.customer_id, b.merchant_id,
  (b.available
    - coalesce((select sum(l.remaining) from point_lots l
        where l.customer_id = b.customer_id and l.state = 'active' and l.remaining > 0 and l.expires_at <= now()), 0)
    + coalesce((select sum(-m.points) from holds h
        join lot_moves m on m.entry_id = h.entry_id and m.kind = 'hold'
        join point_lots l on l.id = m.lot_id
        where h.customer_id = b.customer_id and h.status = 'active' and h.expires_at <= now()
          and l.state = 'active' and (l.expires_at is null or l.expires_at > now())), 0))::bigint as available,
  b.pending, b.updated_at,
  (b.held - coalesce((select sum(h.points) from holds h
      where h.customer_id = b.customer_id and h.status = 'active' and h.expires_at <= now()), 0))::bigint as held
from balances b;
`)
    .execute(db);
  await installLedgerFunctions(db);
}

// The columns, the view's column and the wider checks stay: the installed functions use them.
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop function if exists loyalty_release_expired_holds(timestamptz, integer), loyalty_cancel_hold(jsonb),
  loyalty_create_hold(jsonb), loyalty_take_hold_points(uuid, uuid, uuid, uuid), loyalty_use_hold(uuid, uuid, jsonb),
  loyalty_release_holds(uuid, uuid, timestamptz), loyalty_release_hold(uuid, text), loyalty_hold_answer(uuid);
`)
    .execute(db);
}
