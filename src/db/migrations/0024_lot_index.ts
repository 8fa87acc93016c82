import { type Kysely, sql } from 'kysely';

// One index fewer on every earn lot (docs/performance.md, "Named prepared statements, taken; two
// group commits in flight; an index fewer"):
// point_lots_reminder_idx held the same lots as point_lots_expiry_idx less those already reminded
// of, for the daily points:remind-expiring job alone. That job now reads the expiry index over its
// window (the lots expiring within POINTS_EXPIRY_REMINDER_DAYS, 7 by default) and skips the reminded ones;
// every purchase's lot saves an index insert and its WAL record, and marking a lot reminded no
// longer touches an index (a HOT update where the page has room). The previous release's query
// runs the same way (decision 003: nothing it reads goes away).

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists point_lots_reminder_idx`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    create index if not exists point_lots_reminder_idx on point_lots (expires_at)
    where state = 'active' and remaining > 0 and expires_at is not null and expiry_reminded_at is null`.execute(
    db,
  );
}
