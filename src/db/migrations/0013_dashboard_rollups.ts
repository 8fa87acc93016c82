import { type Kysely, sql } from 'kysely';

// Daily rollups of the portal dashboard, per merchant day in the merchant's time zone, kept by the
// dashboard:rollups job (src/modules/portal/dashboard.rollups.ts) rather than by the ledger writes,
// so a purchase costs no extra row. Expand only: older releases neither read nor miss these tables.
//
// dashboard_daily: purchases and money figures of a day at an outlet (outlet_id null: no outlet).
// dashboard_daily_customers: the day's buyers counted by what the range totals need (see the job):
//   outlet_id null for the merchant as a whole, else buyers at that outlet; prev_day null for
//   customers whose first purchase was that day, else the day of their previous purchase (at that
//   outlet; '-infinity' when none or over a year before), prev_is_first when that previous day was
//   their first purchase day.
// dashboard_rollup_state: per merchant, the zone the days are in and how far the rollups reach.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
create table dashboard_daily (
  merchant_id uuid not null references merchants (id) on delete cascade,
  day date not null,
  outlet_id uuid,
  purchases integer not null,
  revenue bigint not null,
  points_earned bigint not null,
  points_redeemed bigint not null
);
create unique index dashboard_daily_key on dashboard_daily (merchant_id, day, outlet_id) nulls not distinct;

create table dashboard_daily_customers (
  merchant_id uuid not null references merchants (id) on delete cascade,
  day date not null,
  outlet_id uuid,
  prev_day date,
  prev_is_first boolean not null,
  customers integer not null
);
create unique index dashboard_daily_customers_key
  on dashboard_daily_customers (merchant_id, outlet_id, day, prev_day, prev_is_first) nulls not distinct;

create table dashboard_rollup_state (
  merchant_id uuid primary key references merchants (id) on delete cascade,
  time_zone text not null,
  -- Rollups hold every purchase, refund and refund entry created before watermark - the overlap
  -- the job re-reads (longer than any ledger transaction may run).
  watermark timestamptz not null,
  updated_at timestamptz not null default now()
);

-- The job and the dashboard find the refunds made since the watermark.
create index refunds_merchant_created_idx on refunds (merchant_id, created_at);
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop index if exists refunds_merchant_created_idx;
drop table if exists dashboard_rollup_state, dashboard_daily_customers, dashboard_daily;
`)
    .execute(db);
}
