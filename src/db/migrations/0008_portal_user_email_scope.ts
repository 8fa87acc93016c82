import { type Kysely, sql } from 'kysely';

// Staff emails are unique per merchant, operators' among operators. One person may work for two
// merchants, and creating a user no longer tells a merchant that an email exists at another one.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop index if exists portal_users_email_idx;
create unique index portal_users_merchant_email_idx on portal_users (merchant_id, lower(email))
  where merchant_id is not null;
create unique index portal_users_operator_email_idx on portal_users (lower(email))
  where merchant_id is null;
create index portal_users_email_lookup_idx on portal_users (lower(email));
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Fails while an email is used at two merchants: merge or rename those accounts first.
  await sql
    .raw(`
drop index if exists portal_users_email_lookup_idx;
drop index if exists portal_users_operator_email_idx;
drop index if exists portal_users_merchant_email_idx;
create unique index portal_users_email_idx on portal_users (lower(email));
`)
    .execute(db);
}
