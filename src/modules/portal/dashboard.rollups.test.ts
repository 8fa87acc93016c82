import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScaleData } from '../../../bench/lib/scale-data.js';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import { findCustomerState } from '../customers/customers.service.js';
import { commitPurchase, refundPurchase } from '../ledger/ledger.service.js';
import { createDevice } from '../merchants/merchants.service.js';
import { DEFAULT_MERCHANT_TIME_ZONE } from '../merchants/time-zone.js';
import { DEFAULT_RULES } from '../programme/programme.schema.js';
import { readRollupState, refreshDashboardRollups } from './dashboard.rollups.js';
import { type DashboardOptions, getDashboard, getDashboardFromPurchases } from './dashboard.service.js';

// The dashboard read from the daily rollups equals the dashboard computed from purchases, on a
// generated history (bench:data at a small scale), before and after new purchases and refunds,
// whether or not the job has run since.

let t: TestDatabase;
let merchantId: string;
let outletIds: string[];
const TZ = DEFAULT_MERCHANT_TIME_ZONE;
const DAY = 86_400_000;

function dayInZone(offsetDays: number): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: TZ }).format(new Date(Date.now() + offsetDays * DAY));
}

const ranges = (): Array<Omit<DashboardOptions, 'merchantId'>> => [
  { from: dayInZone(-89), to: dayInZone(0) },
  { from: dayInZone(-29), to: dayInZone(0), outletId: outletIds[1] },
  { from: dayInZone(-465), to: dayInZone(-100) },
  { from: dayInZone(-45), to: dayInZone(-45) },
  { from: dayInZone(-200), to: dayInZone(-10), outletId: outletIds[0] },
];

async function expectSameAsPurchases(): Promise<void> {
  for (const range of ranges()) {
    const options = { merchantId, timeZone: TZ, ...range };
    const [fromRollups, fromPurchases] = await Promise.all([
      getDashboard(t.db, options),
      getDashboardFromPurchases(t.db, options),
    ]);
    expect(fromRollups, JSON.stringify(range)).toEqual(fromPurchases);
  }
}

beforeAll(async () => {
  t = await createTestDatabase({ poolMax: 8 });
  const summary = await loadScaleData(t.db, {
    connectionString: t.url,
    customers: 1500,
    entries: 15_000,
    days: 500,
    outletsPerMerchant: 3,
  });
  const merchant = summary.merchants[0];
  if (!merchant) throw new Error('no merchant generated');
  merchantId = merchant.id;
  outletIds = merchant.outletIds;
}, 120_000);

afterAll(async () => {
  await t?.drop();
});

describe('dashboard rollups', () => {
  it('builds every merchant history in the merchant zone, and the dashboard reads them', async () => {
    expect(await readRollupState(t.db, merchantId)).toBeNull();
    const result = await refreshDashboardRollups(t.db);
    expect(result.days).toBeGreaterThan(400);
    expect((await readRollupState(t.db, merchantId))?.timeZone).toBe(TZ);
    await expectSameAsPurchases();

    // It reads the stored rows: a tampered one shows.
    const day = dayInZone(-50);
    const outletId = outletIds[0] ?? '';
    const bump = (by: number) =>
      sql`update dashboard_daily set revenue = revenue + ${by}
          where merchant_id = ${merchantId} and day = ${day} and outlet_id = ${outletId}`.execute(t.db);
    await bump(1);
    try {
      const tampered = await getDashboard(t.db, { merchantId, timeZone: TZ, from: day, to: day });
      const raw = await getDashboardFromPurchases(t.db, { merchantId, timeZone: TZ, from: day, to: day });
      expect(tampered.totals.revenue).toBe(raw.totals.revenue + 1);
    } finally {
      await bump(-1);
    }
  });

  it('stays equal after purchases and refunds, before and after the job sees them, with two jobs at once', async () => {
    const rules = DEFAULT_RULES;
    const device = await createDevice(t.db, { merchantId, name: 'Till', outletId: outletIds[2] });
    const { rows: buyers } = await sql<{ id: string }>`
      select id from customers where merchant_id = ${merchantId} order by created_at limit 3`.execute(t.db);
    for (const buyer of buyers) {
      const customer = await findCustomerState(t.db, {
        merchantId,
        ref: { customerId: buyer.id },
        tierWindowDays: null,
      });
      if (!customer) throw new Error('customer not found');
      await commitPurchase(t.db, {
        merchantId,
        rules,
        customer,
        orderId: randomUUID(),
        receipt: { total: 150_000 },
        redeemPoints: 0,
        context: { deviceId: device.id },
      });
    }
    // A partial refund of a purchase made weeks ago changes that day.
    const { rows: old } = await sql<{ id: string }>`
      select id from purchases where merchant_id = ${merchantId} and refunded_amount = 0
        and created_at < now() - interval '20 days' and created_at > now() - interval '60 days'
      order by created_at limit 1`.execute(t.db);
    const purchaseId = old[0]?.id;
    if (!purchaseId) throw new Error('no purchase to refund');
    await refundPurchase(t.db, {
      merchantId,
      rules,
      purchaseId,
      amount: 10_000,
      context: { deviceId: device.id },
    });

    await expectSameAsPurchases();
    const [a, b] = await Promise.all([refreshDashboardRollups(t.db), refreshDashboardRollups(t.db)]);
    expect(a.days + b.days).toBeGreaterThan(0);
    await expectSameAsPurchases();
    // Only what changed is recomputed once the history is built.
    const again = await refreshDashboardRollups(t.db);
    expect(again.days).toBeLessThan(10);
    await expectSameAsPurchases();
  });

  it('answers a request in another zone from purchases', async () => {
    const options = { merchantId, timeZone: 'Asia/Vladivostok', from: dayInZone(-30), to: dayInZone(0) };
    expect(await getDashboard(t.db, options)).toEqual(await getDashboardFromPurchases(t.db, options));
  });
});
