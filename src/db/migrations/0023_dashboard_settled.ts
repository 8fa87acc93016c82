import type { Kysely } from 'kysely';
import { sql } from 'kysely';

// The dashboard:rollups job keeps today too (src/modules/portal/dashboard.rollups.ts): the rows it
// writes hold what was created before settled_until (its watermark minus the overlap), and the
// dashboard adds only what came after, instead of recomputing the recent days from purchases on
// every request. Null: rows written before this migration, which hold every purchase of their days
// up to the watermark; the dashboard recomputes the recent days as before until the job rewrites them.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table dashboard_rollup_state add column settled_until timestamptz`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table dashboard_rollup_state drop column if exists settled_until`.execute(db);
}
