import { type Kysely, sql } from 'kysely';
import { readLedgerFunction } from '../../modules/ledger/ledger.sql.js';

// Campaigns (bonus points on top of the programme) and the merchant's time zone. Expand only:
// the previous release ignores the new table and columns, and its loyalty_commit_purchase calls
// (one jsonb in, one jsonb out) keep working because a payload without `earnBreakdown` grants no
// campaign points.
//
// Budgets: a campaign with limits.totalPoints keeps what it granted in campaigns.granted_points; a
// grant locks that row (after the customer's balance row, campaigns in id order), so parallel
// commits can never overspend it. campaign_grants counts grants per customer (limits.perCustomer),
// serialised by the customer's balance row.

// New (loyalty_grant_campaigns) and changed functions: the commit grants campaign points; a refund
// revokes from every earned lot of its purchase (base and campaign lots).
const CAMPAIGN_FUNCTIONS = [
  'loyalty_land_points',
  'loyalty_grant_campaigns',
  'loyalty_commit_purchase',
  'loyalty_refund_purchase',
] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
alter table merchants add column time_zone text not null default 'Europe/Moscow';

create table campaigns (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  name text not null,
  kind text not null check (kind in ('multiplier', 'bonus_points', 'welcome', 'birthday', 'referral')),
  status text not null default 'draft' check (status in ('draft', 'active', 'paused', 'ended')),
  starts_at timestamptz,
  ends_at timestamptz,
  -- {weekdays: [1..7], from: "HH:MM", to: "HH:MM"} in the merchant's time zone, or null = any time.
  schedule jsonb,
  conditions jsonb not null default '{}',
  effect jsonb not null,
  -- null = the programme's points lifetime.
  bonus_lifetime_days integer check (bonus_lifetime_days > 0),
  limit_per_customer integer check (limit_per_customer > 0),
  limit_total_points bigint check (limit_total_points > 0),
  -- Points granted so far; kept only for campaigns with limit_total_points (the budget counter).
  granted_points bigint not null default 0 check (granted_points >= 0),
  priority integer not null default 0,
  exclusive boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (limit_total_points is null or granted_points <= limit_total_points)
);
create index campaigns_merchant_idx on campaigns (merchant_id, created_at);

-- Grants per customer and campaign (limits.perCustomer counts grants).
create table campaign_grants (
  campaign_id uuid not null references campaigns (id) on delete cascade,
  customer_id uuid not null references customers (id) on delete cascade,
  grants integer not null default 0,
  points bigint not null default 0,
  primary key (campaign_id, customer_id)
);
create index campaign_grants_customer_idx on campaign_grants (customer_id);

-- A lot of campaign points: earned by its purchase like the base earn (a refund revokes it by the
-- same rules), with the campaign it came from and its own expiry. Not a foreign key: deleting a
-- campaign leaves its points where they are.
alter table point_lots add column campaign_id uuid;
-- What the purchase earned and why: [{source, campaignId, name, points}], as its commit answered.
alter table purchases add column earn_breakdown jsonb;
`)
    .execute(db);
  for (const name of CAMPAIGN_FUNCTIONS) {
    await sql.raw(readLedgerFunction(name)).execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop function if exists loyalty_grant_campaigns(uuid, uuid, uuid, jsonb);
alter table purchases drop column if exists earn_breakdown;
alter table point_lots drop column if exists campaign_id;
drop table if exists campaign_grants;
drop table if exists campaigns;
alter table merchants drop column if exists time_zone;
`)
    .execute(db);
}
