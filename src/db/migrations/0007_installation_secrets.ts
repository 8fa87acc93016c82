import { type Kysely, sql } from 'kysely';

// Keys and secrets at rest.
// - installation_settings: values an installation generates for itself on first start. Outside
//   production, with no APP_ENCRYPTION_KEY configured and DATABASE_URL in use, the installation's
//   own random key is kept here (so every database is its own installation; production configures
//   the key and this row is never written).
// - webhook signing secrets are sealed (AES-GCM under the app key) like bot tokens: the columns are
//   renamed to say so, and only a display prefix stays readable. Rows written before this migration
//   still hold the secret in plain text; every process seals them when it starts
//   (sealPlaintextWebhookSecrets), since sealing needs the key and migrations never see it.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
create table installation_settings (
  name text primary key,
  value text not null,
  created_at timestamptz not null default now()
);
alter table webhook_endpoints rename column secret to secret_enc;
alter table webhook_endpoints rename column previous_secret to previous_secret_enc;
alter table webhook_endpoints add column secret_prefix text;
update webhook_endpoints set secret_prefix = left(secret_enc, 10);
alter table webhook_endpoints alter column secret_prefix set not null;
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
alter table webhook_endpoints drop column if exists secret_prefix;
alter table webhook_endpoints rename column previous_secret_enc to previous_secret;
alter table webhook_endpoints rename column secret_enc to secret;
drop table if exists installation_settings;
`)
    .execute(db);
}
