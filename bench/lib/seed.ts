import { sql } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { issueCustomerCode } from '../../src/modules/customers/customers.service.js';
import { createApiKey, createMerchant, createOutlet } from '../../src/modules/merchants/merchants.service.js';
import { DEFAULT_RULES, type ProgrammeRules } from '../../src/modules/programme/programme.schema.js';

/** The merchant the benchmark drives, with its customers. */
export interface BenchMerchant {
  merchantId: string;
  apiKey: string;
  outletId: string;
  rules: ProgrammeRules;
  customerIds: string[];
}

/**
 * One merchant (default programme) with an API key and an outlet, and `customers` customers that
 * each hold `startingPoints` available points. Customers are inserted in bulk, consistently with
 * what createCustomer + adjustPoints would leave: a balance row, one active lot and one `adjust`
 * ledger entry per customer, so every ledger invariant holds from the start (outbox events of the
 * seeding are left out: no worker runs during the benchmark).
 */
export async function seedMerchant(
  db: Database,
  options: { customers: number; startingPoints: number },
): Promise<BenchMerchant> {
  const merchant = await createMerchant(db, { name: 'Bench merchant', rules: DEFAULT_RULES });
  const outlet = await createOutlet(db, { merchantId: merchant.id, name: 'Bench outlet' });
  const key = await createApiKey(db, { merchantId: merchant.id, name: 'Bench POS' });
  const merchantId = merchant.id;
  const points = options.startingPoints;
  await sql`
    with c as (
      insert into customers (merchant_id, phone, name)
      select ${merchantId}::uuid, '+7990' || lpad(i::text, 7, '0'), 'Bench customer ' || i
      from generate_series(1, ${options.customers}::integer) as i
      returning id
    ), b as (
      insert into balances (customer_id, merchant_id, available)
      select id, ${merchantId}::uuid, ${points}::bigint from c
    ), l as (
      insert into point_lots (merchant_id, customer_id, source, points, remaining, state, available_at, expires_at)
      select ${merchantId}::uuid, id, 'adjust', ${points}::bigint, ${points}::bigint, 'active', now(),
             now() + make_interval(days => ${merchant.rules.pointsLifetimeDays}::integer)
      from c
      returning id, customer_id
    )
    insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, lot_id, reason)
    select ${merchantId}::uuid, customer_id, 'adjust', 'available', ${points}::bigint, id, 'bench starting balance'
    from l
  `.execute(db);
  // Fresh planner statistics, so autovacuum's first ANALYZE does not change plans mid-phase.
  await sql`analyze`.execute(db);
  const rows = await db
    .selectFrom('customers')
    .select('id')
    .where('merchant_id', '=', merchantId)
    .orderBy('phone')
    .execute();
  return {
    merchantId,
    apiKey: key.key,
    outletId: outlet.id,
    rules: merchant.rules,
    customerIds: rows.map((r) => r.id),
  };
}

/** Issues one live code per customer with the app's own issueCustomerCode; customer id -> code. */
export async function issueCodes(
  db: Database,
  options: { merchantId: string; customerIds: string[]; ttlSeconds: number; concurrency: number },
): Promise<Map<string, string>> {
  const codes = new Map<string, string>();
  let next = 0;
  const worker = async () => {
    while (next < options.customerIds.length) {
      const customerId = options.customerIds[next++];
      if (customerId === undefined) break;
      const { code } = await issueCustomerCode(db, {
        merchantId: options.merchantId,
        customerId,
        ttlSeconds: options.ttlSeconds,
      });
      codes.set(customerId, code);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return codes;
}

/** Ledger invariants of the merchant after the run: stored balances equal entries and lots. */
export async function checkLedger(db: Database, merchantId: string) {
  const result = await sql<{ customers: number; purchases: number; entries: number; lots: number }>`
    select
      (select count(*) from balances where merchant_id = ${merchantId})::int as customers,
      (select count(*) from purchases where merchant_id = ${merchantId})::int as purchases,
      (select count(*) from balances b
       cross join lateral (
         select coalesce(sum(e.points) filter (where e.bucket = 'available'), 0) as available,
                coalesce(sum(e.points) filter (where e.bucket = 'pending'), 0) as pending
         from ledger_entries e where e.customer_id = b.customer_id) s
       where b.merchant_id = ${merchantId}
         and (b.available <> s.available or b.pending <> s.pending))::int as entries,
      (select count(*) from balances b
       where b.merchant_id = ${merchantId}
         and b.available is distinct from (
           select coalesce(sum(l.remaining), 0) from point_lots l
           where l.customer_id = b.customer_id and l.state = 'active'))::int as lots
  `.execute(db);
  const row = result.rows[0];
  return {
    customers: row?.customers ?? 0,
    purchases: row?.purchases ?? 0,
    balancesNotMatchingEntries: row?.entries ?? 0,
    balancesNotMatchingLots: row?.lots ?? 0,
  };
}
