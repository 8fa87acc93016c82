import { type Kysely, sql } from 'kysely';

// Outbox delivery: webhook endpoints, Telegram settings and staff links, one row per delivery
// attempt, pause switches, run-time switches, counters that never go down (dead events), and what
// the alert monitor needs (per-minute request figures from every replica, sampled 5xx incidents).

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
-- A domain event (target null) is fanned out by the worker into one delivery per target:
-- 'webhook' (endpoint_id), 'telegram_customer' (a customer's chat via the merchant's bot),
-- 'telegram_staff' (a linked staff chat via the platform's notify bot).
alter table outbox_events
  add column target text check (target in ('webhook', 'telegram_customer', 'telegram_staff')),
  add column endpoint_id uuid,
  add column chat_id text,
  add column parent_id bigint references outbox_events (id) on delete cascade,
  add column dead_at timestamptz;
create index outbox_events_dead_idx on outbox_events (merchant_id, dead_at) where status = 'dead';
create index outbox_events_processing_idx on outbox_events (locked_until) where status = 'processing';
create index outbox_events_delivered_idx on outbox_events (delivered_at) where status = 'delivered';
create index outbox_events_parent_idx on outbox_events (parent_id) where parent_id is not null;

-- Workers are woken by NOTIFY loyalty_outbox, sent by the API after its commits (throttled, see
-- src/jobs/outbox.notify.ts) rather than by a trigger: NOTIFY inside a transaction takes a
-- server-wide lock through the commit's flush and would serialise every ledger write.

create table outbox_attempts (
  id bigint generated always as identity primary key,
  event_id bigint not null references outbox_events (id) on delete cascade,
  attempt integer not null,
  started_at timestamptz not null default now(),
  duration_ms integer not null,
  status_code integer,
  result text not null check (result in ('ok', 'http_error', 'rate_limited', 'timeout', 'error')),
  error text,
  response_excerpt text
);
create index outbox_attempts_event_idx on outbox_attempts (event_id, id);

create table webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  url text not null,
  description text,
  event_types text[] not null default '{}',
  enabled boolean not null default true,
  disabled_reason text,
  secret text not null,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index webhook_endpoints_merchant_idx on webhook_endpoints (merchant_id);
alter table outbox_events add constraint outbox_events_endpoint_fk
  foreign key (endpoint_id) references webhook_endpoints (id) on delete cascade;

-- Merchant-level delivery and Telegram settings.
alter table merchants
  add column outbox_paused_at timestamptz,
  add column telegram_bot_token_enc text,
  add column telegram_bot_username text,
  add column telegram_webhook_secret text,
  add column notify_large_purchase_minor bigint;

-- Staff chats linked to the platform's notify bot with a one-time /start token.
create table staff_telegram_links (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid not null references merchants (id) on delete cascade,
  token_hash text not null unique,
  token_expires_at timestamptz not null,
  chat_id text,
  telegram_username text,
  linked_at timestamptz,
  created_at timestamptz not null default now()
);
create unique index staff_telegram_links_chat_idx on staff_telegram_links (merchant_id, chat_id)
  where chat_id is not null;

-- Run-time switches shared by every replica: 'maintenance', 'read_only', 'outbox_paused'.
create table runtime_switches (
  name text primary key check (name in ('maintenance', 'read_only', 'outbox_paused')),
  enabled boolean not null,
  updated_at timestamptz not null default now(),
  updated_by text
);

-- Monotonic counters (e.g. outbox_dead_total: replay and retention never lower it).
create table counters (
  name text primary key,
  value bigint not null default 0
);

-- Per-minute HTTP figures flushed by every API replica, summed by the alert monitor.
create table http_minute_stats (
  minute timestamptz not null,
  kind text not null check (kind in ('5xx', 'slow', 'total')),
  count bigint not null,
  primary key (minute, kind)
);

-- Sampled 5xx incidents with their context, sent by the alert monitor.
create table alert_incidents (
  id bigint generated always as identity primary key,
  created_at timestamptz not null default now(),
  route text,
  method text,
  status integer,
  request_id text,
  error text,
  sent_at timestamptz
);
create index alert_incidents_unsent_idx on alert_incidents (id) where sent_at is null;

-- The alert monitor's memory: whether an alert is firing and when it was last sent (cooldown).
create table alert_states (
  name text primary key,
  firing boolean not null default false,
  last_value double precision,
  last_sent_at timestamptz,
  updated_at timestamptz not null default now()
);
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop table if exists alert_states, alert_incidents, http_minute_stats, counters, runtime_switches,
  staff_telegram_links, outbox_attempts cascade;
alter table outbox_events drop constraint if exists outbox_events_endpoint_fk;
drop table if exists webhook_endpoints cascade;
alter table merchants drop column if exists outbox_paused_at, drop column if exists telegram_bot_token_enc,
  drop column if exists telegram_bot_username, drop column if exists telegram_webhook_secret,
  drop column if exists notify_large_purchase_minor;
drop index if exists outbox_events_dead_idx, outbox_events_processing_idx, outbox_events_delivered_idx,
  outbox_events_parent_idx;
alter table outbox_events drop column if exists target, drop column if exists endpoint_id,
  drop column if exists chat_id, drop column if exists parent_id, drop column if exists dead_at;
`)
    .execute(db);
}
