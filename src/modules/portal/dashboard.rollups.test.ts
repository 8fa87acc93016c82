import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScaleData } from '../../../bench/lib/scale-data.js';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import { findCustomerState } from '../customers/customers.service.js';
import { commitPurchase, refundPurchase } from '../ledger/ledger.service.js';
import { createDevice } from '../merchants/merchants.service.js';
import { DEFAULT_RULES } from '../programme/programme.schema.js';
import { ROLLUP_OVERLAP_MS, readRollupState, refreshDashboardRollups } from './dashboard.rollups.js';
import { type DashboardOptions, getDashboard, getDashboardFromPurchases } from './dashboard.service.js';

// The dashboard read from the daily rollups equals the dashboard computed from purchases, on a
// generated history (bench:data at a small scale), before and after new purchases and refunds,
// whether or not the job has run since.

let t: TestDatabase;
let merchantId: string;
let outletIds: string[];
let doubleId: string;
let welcomeId: string;
const DAY = 86_400_000;

/**
 * The merchants' zone for this run: of zones a few hours apart, the one nearest midday now, so that
 * "today" cannot change while a test runs (the tests move purchases to the start of today and compare
 * today's rollup).
 */
function zoneNearMidday(): string {
  const zones = [
    'Europe/London',
    'Europe/Moscow',
    'Asia/Novosibirsk',
    'Asia/Kamchatka',
    'America/Sao_Paulo',
    'America/Chicago',
  ];
  const hour = (zone: string) =>
    Number(
      new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: 'numeric', hourCycle: 'h23' }).format(
        new Date(),
      ),
    );
  return zones.reduce((best, zone) => (Math.abs(hour(zone) - 12) < Math.abs(hour(best) - 12) ? zone : best));
}
const TZ = zoneNearMidday();

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

/** The generated history's campaign figures, read from the rollups. */
async function expectCampaignFigures(): Promise<void> {
  // Not vacuous: the last 90 days have points of both campaigns, and revenue for the purchase one.
  const recent = await getDashboard(t.db, {
    merchantId,
    timeZone: TZ,
    from: dayInZone(-89),
    to: dayInZone(0),
  });
  const byId = new Map(recent.campaigns.map((c) => [c.campaignId, c]));
  expect(byId.get(doubleId)).toMatchObject({ name: 'Double', kind: 'multiplier' });
  expect(byId.get(doubleId)?.revenue).toBeGreaterThan(0);
  expect(byId.get(welcomeId)).toMatchObject({ name: 'Welcome', kind: 'welcome', purchases: 0, revenue: 0 });
  expect(byId.get(welcomeId)?.points).toBe((byId.get(welcomeId)?.customers ?? 0) * 100);
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
  await t.db.updateTable('merchants').set({ time_zone: TZ }).execute();
  // Campaign points in the history: some purchases' lots came from a campaign, and every customer
  // got a grant outside purchases (a welcome bonus) on a day of the last 500.
  const campaigns = await t.db
    .insertInto('campaigns')
    .values(
      [
        { name: 'Double', kind: 'multiplier', effect: { multiplierBp: 20_000 } },
        { name: 'Welcome', kind: 'welcome', effect: { points: 100 } },
      ].map((c) => ({ ...c, merchant_id: merchantId, status: 'active', effect: JSON.stringify(c.effect) })),
    )
    .returning('id')
    .execute();
  [doubleId, welcomeId] = campaigns.map((c) => c.id) as [string, string];
  await sql`update point_lots set campaign_id = ${doubleId}
    where merchant_id = ${merchantId} and purchase_id is not null and id % 5 = 0`.execute(t.db);
  await sql`
    with g as (
      select merchant_id, id, now() - random() * interval '500 days' as at
      from customers where merchant_id = ${merchantId}
    )
    insert into point_lots (merchant_id, customer_id, source, campaign_id, points, remaining, state,
                            available_at, created_at)
    select merchant_id, id, 'adjust', ${welcomeId}, 100, 100, 'active', at, at from g`.execute(t.db);
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
    await expectCampaignFigures();

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
  }, 120_000);

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
    // One of today's purchases got campaign points, and a customer a grant outside purchases.
    await sql`update point_lots set campaign_id = ${doubleId}
      where id = (select max(id) from point_lots where merchant_id = ${merchantId} and purchase_id is not null)`.execute(
      t.db,
    );
    await sql`
      insert into point_lots (merchant_id, customer_id, source, campaign_id, points, remaining, state, available_at)
      values (${merchantId}, ${buyers[0]?.id}, 'adjust', ${welcomeId}, 100, 100, 'active', now())`.execute(
      t.db,
    );
    // A partial refund of a purchase made weeks ago, with campaign points, changes that day.
    const { rows: old } = await sql<{ id: string }>`
      select id from purchases p where merchant_id = ${merchantId} and refunded_amount = 0
        and created_at < now() - interval '20 days' and created_at > now() - interval '60 days'
        and exists (select 1 from point_lots l where l.purchase_id = p.id and l.campaign_id is not null)
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
  }, 120_000);

  // Three rounds of the reference, which reads every purchase of the ranges (about 3 s a round alone,
  // several times that beside the rest of the suite): the same limit as its siblings.
  it('keeps today in the rollups: the tail since the job adds each buyer once, and a refund recomputes the day', async () => {
    const rules = DEFAULT_RULES;
    const [outletA, outletB] = [outletIds[0] ?? '', outletIds[1] ?? ''];
    // Customers with a history but no purchase today, so each buyer's today is what this test makes it.
    const { rows: fresh } = await sql<{ id: string }>`
      select c.id from customers c where c.merchant_id = ${merchantId}
        and exists (select 1 from purchases p where p.customer_id = c.id)
        and not exists (select 1 from purchases p where p.customer_id = c.id
          and p.created_at >= date_trunc('day', now() at time zone ${TZ}) at time zone ${TZ})
      order by c.id limit 3`.execute(t.db);
    const [x, y, z] = fresh.map((r) => r.id);
    if (!x || !y || !z) throw new Error('not enough customers without a purchase today');
    const buy = async (customerId: string, outletId: string, withCampaign: boolean) => {
      const customer = await findCustomerState(t.db, {
        merchantId,
        ref: { customerId },
        tierWindowDays: null,
      });
      if (!customer) throw new Error('customer not found');
      const { purchase } = await commitPurchase(t.db, {
        merchantId,
        rules,
        customer,
        orderId: randomUUID(),
        receipt: { total: 120_000 },
        redeemPoints: 0,
        context: { outletId },
      });
      if (withCampaign) {
        await sql`update point_lots set campaign_id = ${doubleId} where purchase_id = ${purchase.id}`.execute(
          t.db,
        );
      }
      return purchase.id;
    };
    // Before the job's settledUntil: x at outlet A (with the campaign), z at outlet B.
    const early = [await buy(x, outletA, true), await buy(z, outletB, false)];
    await sql`update purchases set created_at = greatest(created_at - interval '10 minutes',
        date_trunc('day', now() at time zone ${TZ}) at time zone ${TZ})
      where id = any(${early}::uuid[])`.execute(t.db);
    await refreshDashboardRollups(t.db);
    const state = await readRollupState(t.db, merchantId);
    expect(state?.settledUntil?.getTime()).toBe((state?.watermark.getTime() ?? 0) - ROLLUP_OVERLAP_MS);

    // The tail: x again at A (campaign again) and at B, y new, z again at B.
    await buy(x, outletA, true);
    await buy(x, outletB, false);
    await buy(y, outletA, true);
    await buy(z, outletB, false);
    await expectSameAsPurchases();
    const today = { merchantId, timeZone: TZ, from: dayInZone(0), to: dayInZone(0) };
    const raw = await getDashboardFromPurchases(t.db, today);
    expect(await getDashboard(t.db, today)).toEqual(raw);
    expect(raw.campaigns.find((c) => c.campaignId === doubleId)?.customers).toBeGreaterThanOrEqual(2);

    // Today's stored rows are read, not recomputed: a tampered one shows.
    const bump = (by: number) =>
      sql`update dashboard_daily set revenue = revenue + ${by}
          where merchant_id = ${merchantId} and day = ${dayInZone(0)} and outlet_id = ${outletA}`.execute(
        t.db,
      );
    await bump(1);
    try {
      expect((await getDashboard(t.db, today)).totals.revenue).toBe(raw.totals.revenue + 1);
    } finally {
      await bump(-1);
    }

    // A refund of a purchase the stored rows hold: its day is read whole from purchases again.
    await refundPurchase(t.db, {
      merchantId,
      rules,
      purchaseId: early[0] ?? '',
      amount: 20_000,
      context: {},
    });
    await bump(1);
    try {
      await expectSameAsPurchases();
    } finally {
      await bump(-1);
    }
    await refreshDashboardRollups(t.db);
    await expectSameAsPurchases();
  }, 120_000);

  it('answers a request in another zone from purchases', async () => {
    const options = { merchantId, timeZone: 'Asia/Vladivostok', from: dayInZone(-30), to: dayInZone(0) };
    expect(await getDashboard(t.db, options)).toEqual(await getDashboardFromPurchases(t.db, options));
  });
});
