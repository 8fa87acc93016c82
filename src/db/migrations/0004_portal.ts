import { type Kysely, sql } from 'kysely';

// People who sign in: merchant staff (owner, admin, manager, cashier) and platform operators;
// their rotating refresh tokens (grouped in families so a reused token revokes the whole family);
// the audit log of every change made in the portal or the admin panel; worker heartbeats.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
create table portal_users (
  id uuid primary key default gen_random_uuid(),
  merchant_id uuid references merchants (id) on delete cascade,
  email text not null,
  name text,
  password_hash text not null,
  role text not null check (role in ('owner', 'admin', 'manager', 'cashier', 'operator')),
  locale text not null default 'ru' check (locale in ('ru', 'en')),
  disabled_at timestamptz,
  last_login_at timestamptz,
  created_at timestamptz not null default now(),
  -- Operators belong to no merchant; everyone else to exactly one.
  check ((role = 'operator') = (merchant_id is null))
);
create unique index portal_users_email_idx on portal_users (lower(email));
create index portal_users_merchant_idx on portal_users (merchant_id);

create table refresh_tokens (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references portal_users (id) on delete cascade,
  family_id uuid not null,
  token_hash text not null unique,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz,
  revoked_at timestamptz,
  user_agent text,
  ip text
);
create index refresh_tokens_family_idx on refresh_tokens (family_id);
create index refresh_tokens_user_idx on refresh_tokens (user_id);

create table audit_log (
  id bigint generated always as identity primary key,
  merchant_id uuid references merchants (id) on delete cascade,
  actor_user_id uuid references portal_users (id) on delete set null,
  actor text not null,
  action text not null,
  entity_type text not null,
  entity_id text,
  before jsonb,
  after jsonb,
  ip text,
  created_at timestamptz not null default now()
);
create index audit_log_merchant_idx on audit_log (merchant_id, id);

create table worker_heartbeats (
  worker_id text primary key,
  hostname text not null,
  started_at timestamptz not null,
  last_seen_at timestamptz not null
);
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw('drop table if exists worker_heartbeats, audit_log, refresh_tokens, portal_users cascade;')
    .execute(db);
}
