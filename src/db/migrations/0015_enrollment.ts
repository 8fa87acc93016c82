import { type Kysely, sql } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Enrollment and the campaigns that grant points outside a purchase (welcome, birthday, referral).
// Expand only (decision 003): the previous release ignores the new columns and table, and its inserts
// into customers get a referral code from the column default.
// - customers.birth_date (birthday campaigns), referral_code (short, unambiguous, unique per merchant,
//   generated for every customer including the existing ones) and referred_by (the referrer, a
//   customer of the same merchant, set when the customer joins).
// - Points granted outside a purchase are lots of source 'bonus' with a ledger entry of kind 'bonus'
//   (campaign_id set, purchase_id null): a refund never revokes them, and they are spent and expire
//   like any other lot.
// - campaign_occasions: one row per campaign, customer and occasion ('welcome', 'referee',
//   'referrer:<referee id>', 'birthday:<year>'); its primary key makes each occasion grant once,
//   however many join paths, workers or retries race for it.
// - bot_referrals: the referral code a Telegram user started the bot with (t.me/<bot>?start=ref_CODE),
//   kept until they share their phone and join.
// The ledger functions are reinstalled from src/modules/ledger/sql/ (loyalty_grant_campaign, shared by
// loyalty_grant_campaigns and loyalty_grant_bonus; loyalty_grant_referral from the commit).

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
-- 8 characters of 31 (no 0/O, 1/I/L): about 8.5e11 codes, read aloud or typed without confusion.
create or replace function customer_referral_code() returns text
language sql volatile as $fn$
  select string_agg(substr('ABCDEFGHJKMNPQRSTUVWXYZ23456789', 1 + floor(random() * 31)::integer, 1), '')
  from generate_series(1, 8)
$fn$;

alter table customers
  add column birth_date date,
  add column referral_code text default customer_referral_code(),
  add column referred_by uuid references customers (id) on delete set null;
-- The backfill drew a code per existing customer; the rare duplicates draw again.
do $do$
begin
  loop
    update customers c set referral_code = customer_referral_code()
    where exists (select 1 from customers d where d.merchant_id = c.merchant_id
                  and d.referral_code = c.referral_code and d.id < c.id);
    exit when not found;
  end loop;
end $do$;
alter table customers alter column referral_code set not null;
create unique index customers_referral_code_idx on customers (merchant_id, referral_code);
alter table customers add constraint customers_referred_by_not_self check (referred_by <> id);
create index customers_referred_by_idx on customers (referred_by) where referred_by is not null;
-- The birthday job looks customers up by month and day (month * 100 + day).
create index customers_birthday_idx
  on customers (merchant_id, ((extract(month from birth_date) * 100 + extract(day from birth_date))::integer))
  where birth_date is not null;

alter table point_lots drop constraint point_lots_source_check;
alter table point_lots add constraint point_lots_source_check
  check (source in ('earn', 'return', 'adjust', 'bonus'));
alter table ledger_entries drop constraint ledger_entries_kind_check;
alter table ledger_entries add constraint ledger_entries_kind_check
  check (kind in ('earn', 'redeem', 'refund_return', 'refund_revoke', 'expire', 'activate', 'adjust', 'bonus'));

create table campaign_occasions (
  campaign_id uuid not null references campaigns (id) on delete cascade,
  customer_id uuid not null references customers (id) on delete cascade,
  occasion text not null,
  points bigint not null,
  created_at timestamptz not null default now(),
  primary key (campaign_id, customer_id, occasion)
);
create index campaign_occasions_customer_idx on campaign_occasions (customer_id);

create table bot_referrals (
  merchant_id uuid not null references merchants (id) on delete cascade,
  telegram_user_id bigint not null,
  referrer_id uuid not null references customers (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (merchant_id, telegram_user_id)
);
`)
    .execute(db);
  await installLedgerFunctions(db);
}

// The constraints stay wide and the functions installed: rows written since may use them.
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop table if exists bot_referrals;
drop table if exists campaign_occasions;
drop index if exists customers_birthday_idx;
drop index if exists customers_referred_by_idx;
drop index if exists customers_referral_code_idx;
alter table customers drop column if exists referred_by, drop column if exists referral_code,
  drop column if exists birth_date;
drop function if exists customer_referral_code();
`)
    .execute(db);
}
