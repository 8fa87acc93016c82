import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';

// The dashboard's figures after purchases and a refund made through the integration API, as a till
// makes them (default programme: 5% earn, 1 point = 1 rouble).

let t: TestApp;
let team: MerchantTeam;
const DAY = 86_400_000;
const day = (offset: number) => new Date(Date.now() + offset * DAY).toISOString().slice(0, 10);

beforeAll(async () => {
  t = await createTestApp();
  team = await createMerchantTeam(t.app, t.db);
});
afterAll(async () => {
  await t.close();
});

function dashboard(query = '') {
  return portalRequest(t.app, team.manager, { method: 'GET', url: `/dashboard${query}` });
}

function integration(url: string, payload: object) {
  return t.app.inject({
    method: 'POST',
    url: `/api/v1/integration${url}`,
    headers: { 'x-api-key': team.merchant.apiKey, 'idempotency-key': randomUUID() },
    payload,
  });
}

describe('GET /dashboard', () => {
  let outlet2: string;

  beforeAll(async () => {
    const { merchant } = team;
    // Days below are UTC days: the dashboard counts in the merchant's zone unless asked for another.
    const zone = await portalRequest(t.app, team.owner, {
      method: 'PATCH',
      url: '/merchant',
      payload: { timeZone: 'UTC' },
    });
    expect(zone.statusCode).toBe(200);
    const x = await createTestCustomer(t.db, { merchant, name: 'Анна' });
    const y = await createTestCustomer(t.db, { merchant, name: 'Борис', points: 300 });
    // X bought two days ago (their first purchase) and again today: returning today.
    const earlier = await commitPurchaseViaApi(t.app, merchant, { customerId: x.customerId, total: 20_000 });
    await t.db
      .updateTable('purchases')
      .set({ created_at: new Date(Date.now() - 2 * DAY) })
      .where('id', '=', earlier.id)
      .execute();
    const first = await commitPurchaseViaApi(t.app, merchant, { customerId: x.customerId, total: 100_000 });

    // Y pays 100 points at a till of a second outlet (the purchase names only the device).
    const outlet = await portalRequest(t.app, team.owner, {
      method: 'POST',
      url: '/outlets',
      payload: { name: 'Точка на Ленина' },
    });
    outlet2 = outlet.json().id;
    const device = await portalRequest(t.app, team.owner, {
      method: 'POST',
      url: '/devices',
      payload: { name: 'Касса 2', outletId: outlet2 },
    });
    const second = await integration('/purchases', {
      customer: { customerId: y.customerId },
      receipt: { total: 60_000 },
      redeemPoints: 100,
      orderId: `order-${randomUUID()}`,
      deviceId: device.json().id,
    });
    expect(second.statusCode).toBe(201);
    expect(second.json().purchase).toMatchObject({ earnedPoints: 25, redeemedPoints: 100, discount: 10_000 });

    // Half of X's purchase comes back: 25 of its 50 points are revoked.
    const refund = await integration(`/purchases/${first.id}/refunds`, {
      amount: 50_000,
      outletId: merchant.outletId,
    });
    expect(refund.statusCode).toBe(201);
    expect(refund.json().refund).toMatchObject({ revokedPoints: 25, returnedPoints: 0 });
  });

  it('sums revenue net of refunds and points net of revocations, with new and returning customers', async () => {
    const res = await dashboard(`?from=${day(-3)}&to=${day(0)}`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.totals).toEqual({
      purchases: 3,
      revenue: 20_000 + 100_000 - 50_000 + 60_000,
      pointsEarned: 10 + 50 - 25 + 25,
      pointsRedeemed: 100,
      newCustomers: 2,
      returningCustomers: 1,
    });
    expect(body.byDay).toEqual([
      {
        date: day(-3),
        purchases: 0,
        revenue: 0,
        pointsEarned: 0,
        pointsRedeemed: 0,
        newCustomers: 0,
        returningCustomers: 0,
      },
      {
        date: day(-2),
        purchases: 1,
        revenue: 20_000,
        pointsEarned: 10,
        pointsRedeemed: 0,
        newCustomers: 1,
        returningCustomers: 0,
      },
      {
        date: day(-1),
        purchases: 0,
        revenue: 0,
        pointsEarned: 0,
        pointsRedeemed: 0,
        newCustomers: 0,
        returningCustomers: 0,
      },
      {
        date: day(0),
        purchases: 2,
        revenue: 110_000,
        pointsEarned: 50,
        pointsRedeemed: 100,
        newCustomers: 1,
        returningCustomers: 1,
      },
    ]);
    expect(body.byOutlet).toEqual(
      expect.arrayContaining([
        {
          outletId: team.merchant.outletId,
          name: 'Outlet',
          purchases: 2,
          revenue: 70_000,
          pointsEarned: 35,
          pointsRedeemed: 0,
        },
        {
          outletId: outlet2,
          name: 'Точка на Ленина',
          purchases: 1,
          revenue: 60_000,
          pointsEarned: 25,
          pointsRedeemed: 100,
        },
      ]),
    );
    expect(body.byOutlet).toHaveLength(2);
  });

  it('filters by outlet (the device’s outlet counts) and defaults to the last 30 days', async () => {
    const res = await dashboard(`?outletId=${outlet2}`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.byDay).toHaveLength(30);
    expect(body.to).toBe(day(0));
    expect(body.totals).toMatchObject({
      purchases: 1,
      revenue: 60_000,
      newCustomers: 1,
      returningCustomers: 0,
    });
    expect(body.byOutlet).toHaveLength(1);
  });

  it('shows nothing of another merchant', async () => {
    const other = await createMerchantTeam(t.app, t.db);
    const res = await portalRequest(t.app, other.owner, { method: 'GET', url: '/dashboard' });
    expect(res.json().totals).toMatchObject({ purchases: 0, revenue: 0 });
  });

  it("counts days in the merchant's time zone unless a valid tz is given", async () => {
    // UTC+14: its calendar day is ahead of UTC's for 14 hours of every UTC day.
    const zone = 'Pacific/Kiritimati';
    await portalRequest(t.app, team.owner, {
      method: 'PATCH',
      url: '/merchant',
      payload: { timeZone: zone },
    });
    try {
      const todayThere = new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(new Date());
      const byDefault = (await dashboard()).json();
      expect(byDefault).toMatchObject({ timeZone: zone, to: todayThere });
      const raw = await t.db
        .selectFrom('purchases')
        .select('created_at')
        .where('merchant_id', '=', team.merchant.merchantId)
        .execute();
      const inZone = (at: Date) => new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(at);
      for (const row of byDefault.byDay as Array<{ date: string; purchases: number }>) {
        expect(row.purchases, row.date).toBe(raw.filter((p) => inZone(p.created_at) === row.date).length);
      }
      const utc = (await dashboard('?tz=UTC')).json();
      expect(utc).toMatchObject({ timeZone: 'UTC', to: day(0) });
    } finally {
      await portalRequest(t.app, team.owner, {
        method: 'PATCH',
        url: '/merchant',
        payload: { timeZone: 'UTC' },
      });
    }
  });

  it('rejects bad ranges and time zones naming the field', async () => {
    const reversed = await dashboard(`?from=${day(0)}&to=${day(-1)}`);
    expect(reversed.statusCode).toBe(400);
    expect(reversed.json().error.message).toMatch(/^from/);
    const tooLong = await dashboard(`?from=${day(-400)}&to=${day(0)}`);
    expect(tooLong.statusCode).toBe(400);
    const badDay = await dashboard('?from=2024-13-45');
    expect(badDay.statusCode).toBe(400);
    expect(badDay.json().error.message).toMatch(/^querystring\.from/);
    const badTz = await dashboard('?tz=Mars/Olympus');
    expect(badTz.statusCode).toBe(400);
    expect(badTz.json().error.message).toMatch(/^querystring\.tz/);
    expect((await dashboard('?tz=Europe/Moscow')).statusCode).toBe(200);
  });

  it('shows the purchase in the customer’s history with its order id', async () => {
    const list = await portalRequest(t.app, team.cashier, { method: 'GET', url: '/customers?q=борис' });
    expect(list.json().total).toBe(1);
    const customer = list.json().items[0];
    expect(customer.lastPurchaseAt).not.toBeNull();
    const ledger = await portalRequest(t.app, team.cashier, {
      method: 'GET',
      url: `/customers/${customer.id}/ledger`,
    });
    const kinds = ledger
      .json()
      .items.map((e: { kind: string; orderId: string | null }) => [e.kind, e.orderId !== null]);
    expect(kinds).toEqual(
      expect.arrayContaining([
        ['earn', true],
        ['redeem', true],
        ['adjust', false],
      ]),
    );
  });
});
