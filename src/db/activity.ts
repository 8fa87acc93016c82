import { sql } from 'kysely';
import type { Executor } from './database.js';

/**
 * Age in seconds of the oldest open transaction of another session on this database (0 when none):
 * `loyalty_db_oldest_transaction_seconds`. A transaction left open (idle in transaction, or a query
 * that never ends) holds back vacuum, so the outbox and ledger tables bloat while it lasts. Sessions
 * of other roles are only visible when the application's role has pg_read_all_stats.
 */
export async function oldestTransactionSeconds(db: Executor): Promise<number> {
  const { rows } = await sql<{ age: number }>`
    select coalesce(extract(epoch from now() - min(xact_start)), 0)::float8 as age
    from pg_stat_activity
    where datname = current_database()
      and pid <> pg_backend_pid()
      and backend_type = 'client backend'
      and xact_start is not null
  `.execute(db);
  return Math.max(0, rows[0]?.age ?? 0);
}
