import { type Kysely, sql } from 'kysely';

// The core schema: tenancy (merchants, outlets, devices, managers, API keys), customers and their
// tokens and codes, the points ledger (balances, immutable entries, lots), purchases, refunds,
// idempotency records and the transactional outbox. Ledger writes live in SQL functions (0002).

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
create table merchants (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  status text not null default 'active' check (status in ('active', 'suspended')),
  rules jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table outlets (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  name text not null,
  address text,
  created_at timestamptz not null default now()
);
create index outlets_merchant_idx on outlets (merchant_id);

create table devices (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  outlet_id uuid references outlets (id) on delete set null,
  name text not null,
  created_at timestamptz not null default now()
);
create index devices_merchant_idx on devices (merchant_id);

create table managers (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  outlet_id uuid references outlets (id) on delete set null,
  name text not null,
  created_at timestamptz not null default now()
);
create index managers_merchant_idx on managers (merchant_id);

-- API keys are stored as SHA-256 of the whole key; the prefix is what people see afterwards.
create table api_keys (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  name text not null,
  prefix text not null,
  key_hash text not null unique,
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
create index api_keys_merchant_idx on api_keys (merchant_id);

create table customers (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  phone text not null check (phone ~ '^\\+[1-9][0-9]{6,14}$'),
  name text,
  telegram_user_id bigint,
  created_at timestamptz not null default now(),
  unique (merchant_id, phone),
  unique (merchant_id, telegram_user_id)
);

-- Opaque customer tokens (Bearer), stored as SHA-256.
create table customer_tokens (
  token_hash text primary key,
  customer_id uuid not null references customers (id) on delete cascade,
  merchant_id uuid not null references merchants (id) on delete cascade,
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  revoked_at timestamptz
);
create index customer_tokens_customer_idx on customer_tokens (customer_id);

-- One row per customer: the stored balance the ledger entries must always add up to.
create table balances (
  customer_id uuid primary key references customers (id) on delete cascade,
  merchant_id uuid not null references merchants (id) on delete cascade,
  available bigint not null default 0 check (available >= 0),
  pending bigint not null default 0 check (pending >= 0),
  updated_at timestamptz not null default now()
);

create table purchases (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  customer_id uuid not null references customers (id) on delete cascade,
  order_id text not null check (length(order_id) between 1 and 128),
  outlet_id uuid references outlets (id),
  device_id uuid references devices (id),
  manager_id uuid references managers (id),
  total bigint not null check (total >= 0),
  eligible_amount bigint not null check (eligible_amount >= 0 and eligible_amount <= total),
  discount bigint not null check (discount >= 0 and discount <= total),
  earned_points bigint not null check (earned_points >= 0),
  redeemed_points bigint not null check (redeemed_points >= 0),
  earn_rate_bp integer not null,
  tier text,
  receipt jsonb not null,
  refunded_amount bigint not null default 0 check (refunded_amount >= 0 and refunded_amount <= total),
  returned_points bigint not null default 0,
  revoked_points bigint not null default 0,
  unrecovered_points bigint not null default 0,
  status text not null default 'committed' check (status in ('committed', 'partially_refunded', 'refunded')),
  created_at timestamptz not null default now(),
  constraint purchases_order_id_unique unique (merchant_id, order_id),
  check (returned_points <= redeemed_points),
  check (revoked_points + unrecovered_points <= earned_points)
);
create index purchases_customer_created_idx on purchases (customer_id, created_at);
create index purchases_merchant_created_idx on purchases (merchant_id, created_at);

create table refunds (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  purchase_id uuid not null references purchases (id) on delete cascade,
  customer_id uuid not null references customers (id) on delete cascade,
  amount bigint not null check (amount > 0),
  returned_points bigint not null check (returned_points >= 0),
  revoked_points bigint not null check (revoked_points >= 0),
  unrecovered_points bigint not null check (unrecovered_points >= 0),
  outlet_id uuid references outlets (id),
  device_id uuid references devices (id),
  manager_id uuid references managers (id),
  created_at timestamptz not null default now()
);
create index refunds_purchase_idx on refunds (purchase_id);

-- Points as lots: each earn (or return) is a lot with its own pending period and expiry.
-- available = sum(remaining) of active lots; pending = sum(remaining) of pending lots.
create table point_lots (
  id bigint generated always as identity primary key,
  merchant_id uuid not null references merchants (id) on delete cascade,
  customer_id uuid not null references customers (id) on delete cascade,
  source text not null check (source in ('earn', 'return', 'adjust')),
  purchase_id uuid references purchases (id) on delete cascade,
  refund_id uuid references refunds (id) on delete cascade,
  points bigint not null check (points > 0),
  remaining bigint not null check (remaining >= 0 and remaining <= points),
  state text not null check (state in ('pending', 'active', 'expired')),
  available_at timestamptz not null,
  expires_at timestamptz,
  created_at timestamptz not null default now()
);
-- Redemption order: soonest expiry first, never-expiring last, then oldest.
create index point_lots_fifo_idx on point_lots (customer_id, expires_at nulls last, id)
  where state = 'active' and remaining > 0;
create index point_lots_activation_idx on point_lots (available_at) where state = 'pending';
create index point_lots_expiry_idx on point_lots (expires_at)
  where state = 'active' and remaining > 0 and expires_at is not null;
create index point_lots_purchase_idx on point_lots (purchase_id) where purchase_id is not null;

-- Immutable: every change of a balance is one row here. bucket says which balance it moves.
create table ledger_entries (
  id bigint generated always as identity primary key,
  merchant_id uuid not null references merchants (id) on delete cascade,
  customer_id uuid not null references customers (id) on delete cascade,
  kind text not null check (kind in ('earn', 'redeem', 'refund_return', 'refund_revoke', 'expire', 'activate', 'adjust')),
  bucket text not null check (bucket in ('available', 'pending')),
  points bigint not null check (points <> 0),
  purchase_id uuid references purchases (id) on delete cascade,
  refund_id uuid references refunds (id) on delete cascade,
  lot_id bigint references point_lots (id) on delete cascade,
  reason text,
  created_at timestamptz not null default now()
);
create index ledger_entries_customer_idx on ledger_entries (customer_id, id);
create index ledger_entries_merchant_created_idx on ledger_entries (merchant_id, created_at);

create function ledger_entries_immutable() returns trigger language plpgsql as $fn$
begin
  raise exception 'ledger entries are immutable' using errcode = 'restrict_violation';
end $fn$;
create trigger ledger_entries_no_update before update on ledger_entries
  for each row execute function ledger_entries_immutable();
create trigger ledger_entries_no_delete before delete on ledger_entries
  for each row when (pg_trigger_depth() = 0 and current_setting('loyalty.allow_ledger_delete', true) is distinct from 'on')
  execute function ledger_entries_immutable();

-- One-time customer codes. The primary key makes a code unique per merchant; a code is reusable
-- by a new customer only once it is expired or consumed (see issue_customer_code in codes.service).
create table customer_codes (
  merchant_id uuid not null references merchants (id) on delete cascade,
  code text not null check (code ~ '^[0-9]{6}$'),
  customer_id uuid not null references customers (id) on delete cascade,
  expires_at timestamptz not null,
  consumed_at timestamptz,
  purchase_id uuid,
  created_at timestamptz not null default now(),
  primary key (merchant_id, code)
);
create index customer_codes_customer_idx on customer_codes (customer_id);

-- Idempotency records per merchant: written by the ledger functions in the same transaction as
-- the operation (src/db/migrations/0002), so a record exists exactly when the operation committed.
create table idempotency_keys (
  merchant_id uuid not null references merchants (id) on delete cascade,
  key text not null,
  request_hash text not null,
  result jsonb not null,
  created_at timestamptz not null default now(),
  primary key (merchant_id, key)
);
create index idempotency_keys_created_idx on idempotency_keys (created_at);

-- Transactional outbox: written in the same transaction as the ledger change it describes.
create table outbox_events (
  id bigint generated always as identity primary key,
  merchant_id uuid references merchants (id) on delete cascade,
  type text not null,
  version integer not null default 1,
  payload jsonb not null,
  status text not null default 'pending' check (status in ('pending', 'processing', 'delivered', 'dead')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  delivered_at timestamptz
);
create index outbox_events_due_idx on outbox_events (next_attempt_at) where status = 'pending';
create index outbox_events_merchant_status_idx on outbox_events (merchant_id, status, created_at);
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop table if exists outbox_events, idempotency_keys, customer_codes, ledger_entries, point_lots, refunds,
  purchases, balances, customer_tokens, customers, api_keys, managers, devices, outlets, merchants cascade;
drop function if exists ledger_entries_immutable();
`)
    .execute(db);
}
