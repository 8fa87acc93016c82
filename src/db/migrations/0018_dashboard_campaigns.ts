import { type Kysely, sql } from 'kysely';

// Points and revenue by campaign on the portal dashboard: a daily rollup per merchant day (in the
// merchant's time zone) and campaign, kept by the dashboard:rollups job beside the rollups of
// migration 0013. Expand only: older releases neither read nor miss the table and indexes.
//
// dashboard_daily_campaigns: the campaign lots (point_lots.campaign_id) of a day, a purchase's on
//   the purchase's day and a grant outside purchases (welcome, birthday, referral) on its own,
//   counted per bucket of the customer's previous grant day of that campaign (prev_day null: their
//   first; '-infinity': none within a year), so a range's distinct customers can be summed like
//   dashboard_daily_customers. points are net of refund revocations; revenue is the purchases'
//   totals net of refunds (0 for grants outside purchases).

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
create table dashboard_daily_campaigns (
  merchant_id uuid not null references merchants (id) on delete cascade,
  day date not null,
  -- Not a foreign key: a deleted campaign's points stay on the dashboard.
  campaign_id uuid not null,
  prev_day date,
  customers integer not null,
  purchases integer not null,
  points bigint not null,
  revenue bigint not null
);
create unique index dashboard_daily_campaigns_key
  on dashboard_daily_campaigns (merchant_id, day, campaign_id, prev_day) nulls not distinct;

-- The job finds a merchant's campaign grants made since its watermark and builds the history.
create index point_lots_campaign_idx on point_lots (merchant_id, created_at) where campaign_id is not null;
-- A customer's previous grant of a campaign.
create index point_lots_customer_campaign_idx on point_lots (customer_id, campaign_id)
  where campaign_id is not null;
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop index if exists point_lots_customer_campaign_idx;
drop index if exists point_lots_campaign_idx;
drop table if exists dashboard_daily_campaigns;
`)
    .execute(db);
}
