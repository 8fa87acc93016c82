import { sql } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { adjustPoints } from '../../src/modules/ledger/ledger.service.js';
import type { TestMerchant } from './factories.js';

/**
 * Customers whose ledger does not add up: entries vs stored balance vs lots (held: vs the points of
 * active holds). Empty when all hold.
 */
export async function findLedgerViolations(db: Database) {
  const { rows } = await sql<{
    customer_id: string;
    available: number;
    pending: number;
    entries_available: number;
    entries_pending: number;
    lots_available: number;
    lots_pending: number;
    held: number;
    entries_held: number;
    holds_held: number;
  }>`
    select b.customer_id, b.available, b.pending, b.held,
      coalesce((select sum(points) from ledger_entries e where e.customer_id = b.customer_id and bucket = 'held'), 0)::bigint as entries_held,
      coalesce((select sum(points) from holds h where h.customer_id = b.customer_id and status = 'active'), 0)::bigint as holds_held,
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
      r.pending !== r.lots_pending ||
      r.held < 0 ||
      r.held !== r.entries_held ||
      r.held !== r.holds_held,
  );
}

/**
 * Lots and entries whose provenance does not add up: a lot's remaining must be its points plus the
 * sum of its moves, and every entry that changes a lot after creating it (all but activations and
 * the first entry of each lot; entries of the held bucket touch no lot) must be the sum of its
 * moves. Empty when all hold.
 */
export async function findProvenanceViolations(db: Database) {
  const { rows } = await sql<{ what: string; id: number; expected: number; moved: number }>`
    select 'lot' as what, l.id, l.remaining as expected, (l.points + coalesce(m.moved, 0))::bigint as moved
    from point_lots l
    left join (select lot_id, sum(points) as moved from lot_moves group by lot_id) m on m.lot_id = l.id
    union all
    select 'entry', e.id, e.points, coalesce(m.moved, 0)::bigint
    from ledger_entries e
    left join (select entry_id, sum(points) as moved from lot_moves group by entry_id) m on m.entry_id = e.id
    left join (select min(id) as id from ledger_entries where lot_id is not null group by lot_id) f on f.id = e.id
    where e.kind <> 'activate' and e.bucket <> 'held' and f.id is null
  `.execute(db);
  return rows.filter((r) => r.expected !== r.moved);
}

/**
 * Ledger rows that name what the dropped foreign keys used to check (decisions 005, 006): a customer
 * that does not exist, a merchant other than their customer's, or a purchase or lot that does not
 * exist or is another customer's. Empty when all hold.
 */
export async function findReferenceViolations(db: Database) {
  const { rows } = await sql<{ what: string; id: string }>`
    select 'purchase' as what, p.id::text from purchases p left join customers c on c.id = p.customer_id
    where c.id is null or c.merchant_id <> p.merchant_id
    union all
    select 'lot', l.id::text from point_lots l left join customers c on c.id = l.customer_id
    left join purchases p on p.id = l.purchase_id
    where c.id is null or c.merchant_id <> l.merchant_id
       or (l.purchase_id is not null and (p.id is null or p.customer_id <> l.customer_id))
    union all
    select 'entry', e.id::text from ledger_entries e left join customers c on c.id = e.customer_id
    left join purchases p on p.id = e.purchase_id
    left join point_lots l on l.id = e.lot_id
    where c.id is null or c.merchant_id <> e.merchant_id
       or (e.purchase_id is not null and (p.id is null or p.customer_id <> e.customer_id))
       or (e.lot_id is not null and (l.id is null or l.customer_id <> e.customer_id))
    union all
    select 'hold', h.id::text from holds h join customers c on c.id = h.customer_id
    where c.merchant_id <> h.merchant_id
    union all
    select 'event', o.id::text from outbox_events o
    where o.merchant_id is not null and not exists (select 1 from merchants m where m.id = o.merchant_id)
  `.execute(db);
  return rows;
}

/** Adds a lot of `points` to a customer that expires after `lifetimeDays` (null: never). */
export async function addLot(
  db: Database,
  merchant: TestMerchant,
  customerId: string,
  points: number,
  lifetimeDays: number | null,
): Promise<void> {
  await adjustPoints(db, {
    merchantId: merchant.merchantId,
    customerId,
    points,
    reason: `lot of ${lifetimeDays ?? 'no'} days`,
    rules: { ...merchant.rules, pointsLifetimeDays: lifetimeDays },
  });
}
