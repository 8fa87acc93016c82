import { type Kysely, sql } from 'kysely';

// Customers are told ahead of time that points are about to expire: each lot is reminded of once.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
alter table point_lots add column expiry_reminded_at timestamptz;
create index point_lots_reminder_idx on point_lots (expires_at)
  where state = 'active' and remaining > 0 and expires_at is not null and expiry_reminded_at is null;
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop index if exists point_lots_reminder_idx;
alter table point_lots drop column if exists expiry_reminded_at;
`)
    .execute(db);
}
