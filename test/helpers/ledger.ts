import { sql } from 'kysely';
import type { Database } from '../../src/db/database.js';

/** Customers whose ledger does not add up: entries vs stored balance vs lots. Empty when all hold. */
export async function findLedgerViolations(db: Database) {
  const { rows } = await sql<{
    customer_id: string;
    available: number;
    pending: number;
    entries_available: number;
    entries_pending: number;
    lots_available: number;
    lots_pending: number;
  }>`
    select b.customer_id, b.available, b.pending,
      coalesce((select sum(points) from ledger_entries e where e.customer_id = b.customer_id and bucket = 'available'), 0)::bigint as entries_available,
      coalesce((select sum(points) from ledger_entries e where e.customer_id = b.customer_id and bucket = 'pending'), 0)::bigint as entries_pending,
      coalesce((select sum(remaining) from point_lots l where l.customer_id = b.customer_id and state = 'active'), 0)::bigint as lots_available,
      coalesce((select sum(remaining) from point_lots l where l.customer_id = b.customer_id and state = 'pending'), 0)::bigint as lots_pending
    from balances b
  `.execute(db);
  return rows.filter(
    (r) =>
      r.available < 0 ||
      r.pending < 0 ||
      r.available !== r.entries_available ||
      r.pending !== r.entries_pending ||
      r.available !== r.lots_available ||
      r.pending !== r.lots_pending,
  );
}
