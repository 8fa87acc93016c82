import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { createMerchant, createOutlet } from '../../src/modules/merchants/merchants.service.js';
import { DEFAULT_RULES, type ProgrammeRules } from '../../src/modules/programme/programme.schema.js';
import { CopyTable as Copy, type CopyTable, type CopyValue } from './copy.js';
import { dropKeys, restoreKeys } from './deferred-keys.js';

// Fills a database with the history a few merchants' customers would leave over two years, the way
// the ledger functions would have written it (src/modules/ledger/sql/): purchases with their earn
// lots and entries, redeems with a move per lot taken (soonest expiry first), pending lots and their
// activations, expiries with their moves, full refunds of earn-only purchases, the codes consumed in
// the last day and the idempotency records still within retention. Customers are simulated one at a
// time in memory and their rows streamed to every table at once with COPY. Lots due in the last day
// are left for the expiry job, as production would hold them between two runs.

const DAY = 86_400_000;

/** What one load wrote. */
export interface ScaleDataSummary {
  merchants: Array<{ id: string; name: string; outletIds: string[] }>;
  rows: Record<string, number>;
  ms: number;
  /** Where the time went: the COPY streams, building indexes and keys, vacuum and analyze. */
  phases: { loadMs: number; keysMs: number; analyzeMs: number };
}

/** Options of a load; every count is approximate except customers. */
export interface ScaleDataOptions {
  connectionString: string;
  customers: number;
  /** Ledger entries to aim at (the purchase rate is steered towards it). */
  entries: number;
  days: number;
  outletsPerMerchant?: number;
  seed?: number;
  now?: Date;
  /** Validate the foreign keys after the load (a join per key; the test does, bench:data trusts them). */
  validateKeys?: boolean;
  /** Called now and then with the progress (customers done). */
  onProgress?: (done: number) => void;
}

interface MerchantPlan {
  id: string;
  name: string;
  share: number;
  rules: ProgrammeRules;
  outletIds: string[];
}

interface Lot {
  id: number;
  purchaseId: string | null;
  points: number;
  remaining: number;
  state: 'pending' | 'active' | 'expired';
  availableAt: Date;
  expiresAt: Date | null;
  createdAt: Date;
}

/** mulberry32: a small seeded generator, so two loads with one seed draw the same history. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PLANS: Array<{ name: string; share: number; rules: ProgrammeRules }> = [
  { name: 'Scale coffee chain', share: 0.6, rules: DEFAULT_RULES },
  {
    name: 'Scale bakery',
    share: 0.3,
    rules: { ...DEFAULT_RULES, earnRateBp: 300, pointsLifetimeDays: null },
  },
  {
    name: 'Scale electronics',
    share: 0.1,
    rules: { ...DEFAULT_RULES, earnRateBp: 200, pendingDays: 14, pointsLifetimeDays: 180 },
  },
];

const COLUMNS = {
  customers: ['id', 'merchant_id', 'phone', 'name', 'created_at'],
  balances: ['customer_id', 'merchant_id', 'available', 'pending', 'updated_at'],
  purchases: [
    'id',
    'merchant_id',
    'customer_id',
    'order_id',
    'outlet_id',
    'total',
    'eligible_amount',
    'discount',
    'earned_points',
    'redeemed_points',
    'earn_rate_bp',
    'receipt',
    'refunded_amount',
    'refunded_eligible',
    'revoked_points',
    'status',
    'created_at',
  ],
  refunds: [
    'id',
    'merchant_id',
    'purchase_id',
    'customer_id',
    'amount',
    'returned_points',
    'revoked_points',
    'unrecovered_points',
    'outlet_id',
    'created_at',
  ],
  point_lots: [
    'id',
    'merchant_id',
    'customer_id',
    'source',
    'purchase_id',
    'points',
    'remaining',
    'state',
    'available_at',
    'expires_at',
    'created_at',
  ],
  ledger_entries: [
    'id',
    'merchant_id',
    'customer_id',
    'kind',
    'bucket',
    'points',
    'purchase_id',
    'refund_id',
    'lot_id',
    'created_at',
  ],
  lot_moves: ['id', 'entry_id', 'lot_id', 'kind', 'purchase_id', 'points', 'created_at'],
  customer_codes: [
    'merchant_id',
    'code',
    'customer_id',
    'expires_at',
    'consumed_at',
    'purchase_id',
    'created_at',
  ],
  idempotency_keys: ['merchant_id', 'key', 'request_hash', 'result', 'created_at'],
} as const;

type TableName = keyof typeof COLUMNS;

async function nextId(db: Database, table: 'point_lots' | 'ledger_entries' | 'lot_moves'): Promise<number> {
  const { rows } = await sql<{
    next: number;
  }>`select coalesce(max(id), 0)::bigint + 1 as next from ${sql.table(table)}`.execute(db);
  return rows[0]?.next ?? 1;
}

/** Loads the history; the merchants and outlets are created first through the services. */
export async function loadScaleData(db: Database, options: ScaleDataOptions): Promise<ScaleDataSummary> {
  const started = performance.now();
  const rand = random(options.seed ?? 12);
  const now = options.now ?? new Date();
  const start = now.getTime() - options.days * DAY;
  const stamp = now.getTime().toString(36);

  const merchants: MerchantPlan[] = [];
  for (const plan of PLANS) {
    const merchant = await createMerchant(db, { name: `${plan.name} ${stamp}`, rules: plan.rules });
    const outletIds: string[] = [];
    for (let i = 1; i <= (options.outletsPerMerchant ?? 4); i++) {
      outletIds.push((await createOutlet(db, { merchantId: merchant.id, name: `Outlet ${i}` })).id);
    }
    merchants.push({ id: merchant.id, name: merchant.name, share: plan.share, rules: plan.rules, outletIds });
  }
  let lotId = await nextId(db, 'point_lots');
  let entryId = await nextId(db, 'ledger_entries');
  let moveId = await nextId(db, 'lot_moves');
  const firstIds = { point_lots: lotId, ledger_entries: entryId, lot_moves: moveId };
  // Phones are unique per merchant; a prefix per load lets two loads share a database.
  const phonePrefix = 10 + (Math.floor(now.getTime() / 1000) % 89);

  // Bare heaps during the load; indexes and keys are built after it (deferred-keys.ts).
  const dropped = await dropKeys(options.connectionString, Object.keys(COLUMNS));
  const tables = {} as Record<TableName, CopyTable>;
  const opened: CopyTable[] = [];
  let loadMs = 0;
  try {
    for (const name of Object.keys(COLUMNS) as TableName[]) {
      const table = await Copy.open(options.connectionString, name, COLUMNS[name], { skipTriggers: true });
      tables[name] = table;
      opened.push(table);
    }
    const codeCursor = new Map<string, number>();
    let entriesSoFar = 0;
    let purchasesSoFar = 0;
    let order = 0;

    for (let c = 0; c < options.customers; c++) {
      let pick = rand();
      const m =
        merchants.find((plan) => {
          pick -= plan.share;
          return pick <= 0;
        }) ?? (merchants[0] as MerchantPlan);
      const rules = m.rules;
      const customerId = randomUUID();
      const joined = start + rand() * (now.getTime() - start - DAY);
      tables.customers.push([
        customerId,
        m.id,
        `+7${phonePrefix}${String(c).padStart(8, '0')}`,
        `Customer ${c}`,
        new Date(joined),
      ]);

      // Steer the purchase rate so the entries land near the target.
      const perPurchase = purchasesSoFar > 0 ? entriesSoFar / purchasesSoFar : 1.5;
      const left = Math.max(1, options.customers - c);
      const mean = Math.max(1, (options.entries - entriesSoFar) / left / perPurchase);
      const count = Math.max(1, Math.round(mean * 2 * rand()));
      const times = Array.from({ length: count }, () => joined + rand() * (now.getTime() - joined)).sort(
        (a, b) => a - b,
      );

      const lots: Lot[] = [];
      let available = 0;
      let pending = 0;
      const entry = (
        kind: string,
        bucket: string,
        points: number,
        at: Date,
        refs: { purchase?: string; refund?: string; lot?: number } = {},
      ): number => {
        const id = entryId++;
        tables.ledger_entries.push([
          id,
          m.id,
          customerId,
          kind,
          bucket,
          points,
          refs.purchase ?? null,
          refs.refund ?? null,
          refs.lot ?? null,
          at,
        ]);
        entriesSoFar += 1;
        return id;
      };
      const move = (entry: number, lot: Lot, points: number, kind: string, at: Date, purchase?: string) => {
        tables.lot_moves.push([moveId++, entry, lot.id, kind, purchase ?? null, points, at]);
        lot.remaining += points;
      };
      // What the activation and expiry jobs (and every write, for expiry) did up to `until`.
      const settle = (until: number) => {
        for (const lot of lots) {
          if (lot.state === 'pending' && lot.availableAt.getTime() <= until) {
            lot.state = 'active';
            entry('activate', 'pending', -lot.remaining, lot.availableAt, { lot: lot.id });
            entry('activate', 'available', lot.remaining, lot.availableAt, { lot: lot.id });
            pending -= lot.remaining;
            available += lot.remaining;
          }
        }
        for (const lot of lots) {
          if (
            lot.state === 'active' &&
            lot.remaining > 0 &&
            lot.expiresAt &&
            lot.expiresAt.getTime() <= until
          ) {
            const points = lot.remaining;
            const id = entry('expire', 'available', -points, lot.expiresAt, { lot: lot.id });
            move(id, lot, -points, 'expire', lot.expiresAt);
            lot.state = 'expired';
            available -= points;
          }
        }
      };

      for (const t of times) {
        settle(t);
        const at = new Date(t);
        const purchaseId = randomUUID();
        const outletId = m.outletIds[Math.floor(rand() * m.outletIds.length)] ?? null;
        const total = 20_000 + Math.floor(rand() * 48) * 10_000;
        const pv = rules.pointValueMinor;
        const cap = Math.floor((total * rules.maxRedeemShareBp) / 10_000 / pv);
        const redeem = available > 0 && rand() < 0.3 ? 1 + Math.floor(rand() * Math.min(available, cap)) : 0;
        const discount = redeem * pv;
        const earn = Math.floor(((total - discount) * rules.earnRateBp) / (10_000 * pv));
        const isPending = rules.pendingDays > 0;
        const isRefunded = redeem === 0 && earn > 0 && !isPending && rand() < 0.02;
        const orderId = `scale-${stamp}-${order++}`;
        purchasesSoFar += 1;

        if (redeem > 0) {
          const id = entry('redeem', 'available', -redeem, at, { purchase: purchaseId });
          let left = redeem;
          const fifo = lots
            .filter((lot) => lot.state === 'active' && lot.remaining > 0)
            .sort(
              (a, b) =>
                (a.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY) -
                  (b.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY) || a.id - b.id,
            );
          for (const lot of fifo) {
            const take = Math.min(lot.remaining, left);
            move(id, lot, -take, 'redeem', at, purchaseId);
            left -= take;
            if (left === 0) break;
          }
          available -= redeem;
        }
        let lot: Lot | null = null;
        if (earn > 0) {
          const availableAt = new Date(t + rules.pendingDays * DAY);
          lot = {
            id: lotId++,
            purchaseId,
            points: earn,
            remaining: earn,
            state: isPending ? 'pending' : 'active',
            availableAt,
            expiresAt:
              rules.pointsLifetimeDays === null
                ? null
                : new Date(availableAt.getTime() + rules.pointsLifetimeDays * DAY),
            createdAt: at,
          };
          lots.push(lot);
          entry('earn', isPending ? 'pending' : 'available', earn, at, { purchase: purchaseId, lot: lot.id });
          if (isPending) pending += earn;
          else available += earn;
        }
        let refundId: string | null = null;
        if (isRefunded && lot) {
          refundId = randomUUID();
          const refundAt = new Date(t + 60_000);
          tables.refunds.push([
            refundId,
            m.id,
            purchaseId,
            customerId,
            total,
            0,
            earn,
            0,
            outletId,
            refundAt,
          ]);
          const id = entry('refund_revoke', 'available', -earn, refundAt, {
            purchase: purchaseId,
            refund: refundId,
            lot: lot.id,
          });
          move(id, lot, -earn, 'refund_revoke', refundAt, purchaseId);
          available -= earn;
        }
        tables.purchases.push([
          purchaseId,
          m.id,
          customerId,
          orderId,
          outletId,
          total,
          total,
          discount,
          earn,
          redeem,
          rules.earnRateBp,
          `{"total":${total}}`,
          refundId ? total : 0,
          refundId ? total : 0,
          refundId ? earn : 0,
          refundId ? 'refunded' : 'committed',
          at,
        ]);
        // The last day's codes (older ones are gone with retention) and idempotency records.
        if (now.getTime() - t < DAY && rand() < 0.5) {
          const k = codeCursor.get(m.id) ?? 0;
          codeCursor.set(m.id, k + 1);
          const code = String((k * 7919 + 123_457) % 1_000_000).padStart(6, '0');
          const issued = new Date(t - 30_000);
          tables.customer_codes.push([m.id, code, customerId, new Date(t + 270_000), at, purchaseId, issued]);
        }
        if (now.getTime() - t < 7 * DAY) {
          const result = JSON.stringify({
            purchase: { id: purchaseId, orderId, customerId, status: 'committed', total, discount },
            balance: { available, pending },
          });
          const hash = createHash('sha256').update(orderId).digest('hex');
          tables.idempotency_keys.push([m.id, `idem-${orderId}`, hash, result, at]);
        }
      }
      // Jobs ran until a day ago: lots due since then wait for the expiry job.
      settle(now.getTime() - DAY);
      for (const lot of lots) {
        if (lot.state === 'pending' && lot.availableAt.getTime() <= now.getTime()) {
          lot.state = 'active';
          entry('activate', 'pending', -lot.remaining, lot.availableAt, { lot: lot.id });
          entry('activate', 'available', lot.remaining, lot.availableAt, { lot: lot.id });
          pending -= lot.remaining;
          available += lot.remaining;
        }
        tables.point_lots.push([
          lot.id,
          m.id,
          customerId,
          'earn',
          lot.purchaseId,
          lot.points,
          lot.remaining,
          lot.state,
          lot.availableAt,
          lot.expiresAt,
          lot.createdAt,
        ] satisfies CopyValue[]);
      }
      tables.balances.push([customerId, m.id, available, pending, new Date(times.at(-1) ?? joined)]);
      if (c % 200 === 0) {
        for (const table of opened) await table.flush();
        if (c % 50_000 === 0) options.onProgress?.(c);
      }
    }
    for (const table of opened) await table.end();
    for (const table of opened) await table.commit();
    loadMs = performance.now() - started;
  } catch (error) {
    for (const table of opened) await table.abort();
    await restoreKeys(options.connectionString, dropped, { validate: options.validateKeys });
    throw error;
  }
  await restoreKeys(options.connectionString, dropped, { validate: options.validateKeys });
  const keysMs = performance.now() - started - loadMs;
  // Identity columns were written explicitly: move their sequences past what the load used.
  for (const [table, first] of Object.entries(firstIds)) {
    const last = { point_lots: lotId, ledger_entries: entryId, lot_moves: moveId }[
      table as keyof typeof firstIds
    ];
    if (last > first) {
      await sql`select setval(pg_get_serial_sequence(${table}, 'id'), ${last - 1}::bigint)`.execute(db);
    }
  }
  const analyzeStarted = performance.now();
  // As autovacuum would leave a table whose rows are old: planner statistics, and the visibility
  // map set, so index-only scans (first and previous purchase of a buyer) read no heap pages.
  await sql`vacuum (analyze)`.execute(db);
  const rows = Object.fromEntries(opened.map((table) => [table.table, table.rows]));
  return {
    merchants: merchants.map(({ id, name, outletIds }) => ({ id, name, outletIds })),
    rows,
    ms: performance.now() - started,
    phases: { loadMs, keysMs, analyzeMs: performance.now() - analyzeStarted },
  };
}
