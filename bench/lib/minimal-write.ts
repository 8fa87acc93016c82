import { sql } from 'kysely';
import type pg from 'pg';
import type { Database } from '../../src/db/database.js';
import type { Operation } from './drivers.js';

// The minimal accrual write, the ceiling any commit path on this server is measured against: one
// statement, its own transaction, that adds points to a balance row and inserts one ledger row and
// one outbox row. It runs on copies of balances, ledger_entries and outbox_events (same columns,
// defaults, checks, indexes and foreign keys to merchants and customers), so the ledger the other
// phases check and the outbox the outbox phase drains stay untouched.

const TABLES = `
create table bench_min_balances (like balances including all);
alter table bench_min_balances
  add foreign key (customer_id) references customers (id) on delete cascade,
  add foreign key (merchant_id) references merchants (id) on delete cascade;
create table bench_min_entries (like ledger_entries including all);
alter table bench_min_entries
  add foreign key (customer_id) references customers (id) on delete cascade,
  add foreign key (merchant_id) references merchants (id) on delete cascade;
create table bench_min_outbox (like outbox_events including all);
alter table bench_min_outbox add foreign key (merchant_id) references merchants (id) on delete cascade;
`;

const MINIMAL_WRITE = `
with b as (
  update bench_min_balances set available = available + $2::bigint, updated_at = now()
  where customer_id = $1::uuid
  returning customer_id, merchant_id, available, pending
), e as (
  insert into bench_min_entries (merchant_id, customer_id, kind, bucket, points)
  select merchant_id, customer_id, 'earn', 'available', $2::bigint from b
)
insert into bench_min_outbox (merchant_id, type, payload)
select merchant_id, 'purchase.committed', jsonb_build_object(
  'customerId', customer_id, 'earnedPoints', $2::bigint,
  'balance', jsonb_build_object('available', available, 'pending', pending))
from b`;

/** Creates the copies and a balance row per customer of the merchant (once per run). */
export async function prepareMinimalWrite(db: Database, merchantId: string): Promise<void> {
  await sql.raw(TABLES).execute(db);
  await sql`
    insert into bench_min_balances (customer_id, merchant_id, available)
    select customer_id, merchant_id, available from balances where merchant_id = ${merchantId}
  `.execute(db);
  await sql`analyze bench_min_balances`.execute(db);
}

/** One minimal accrual write on a random customer: one round trip, a prepared statement. */
export function minimalWriteOp(pool: pg.Pool, randomCustomer: () => string): Operation {
  return async () => {
    const points = 1 + Math.floor(Math.random() * 300);
    await pool.query({
      name: 'bench_minimal_write',
      text: MINIMAL_WRITE,
      values: [randomCustomer(), points],
    });
    return { status: 201 };
  };
}
