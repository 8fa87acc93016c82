import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';
import { postRefund } from '../../../test/helpers/pos.js';

// What a customer sees of the campaigns: the offers they can still get (client API), and why each
// purchase earned what it did in their history.

let t: TestApp;
let team: MerchantTeam;

beforeAll(async () => {
  t = await createTestApp();
  team = await createMerchantTeam(t.app, t.db);
}, 120_000);
afterAll(async () => {
  await t.close();
}, 120_000);

async function createCampaign(payload: object, owner = team.owner) {
  const res = await portalRequest(t.app, owner, { method: 'POST', url: '/campaigns', payload });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ campaign: { id: string } }>().campaign.id;
}

function client(url: string, token: string) {
  return t.app.inject({
    method: 'GET',
    url: `/api/v1/client${url}`,
    headers: { authorization: `Bearer ${token}` },
  });
}

describe('GET /api/v1/client/offers', () => {
  it('lists the active campaigns the customer can still get, running now first, described in their language', async () => {
    const hour = 3_600_000;
    const double = await createCampaign({
      name: 'Двойные баллы на кофе',
      kind: 'multiplier',
      status: 'active',
      effect: { multiplierBp: 20_000 },
      conditions: { categories: ['кофе'], outletIds: [team.merchant.outletId] },
    });
    const later = await createCampaign({
      name: 'Скоро',
      kind: 'bonus_points',
      status: 'active',
      priority: 5,
      startsAt: new Date(Date.now() + 24 * hour).toISOString(),
      effect: { points: 50 },
      conditions: { minTotal: 100_000 },
    });
    const birthday = await createCampaign({
      name: 'День рождения',
      kind: 'birthday',
      status: 'active',
      effect: { points: 300, daysBefore: 3 },
    });
    const once = await createCampaign({
      name: 'Один раз',
      kind: 'bonus_points',
      status: 'active',
      effect: { points: 10 },
      limits: { perCustomer: 1 },
    });
    // Not offered: a welcome bonus (the customer has joined), a draft, a paused one, an ended one,
    // one whose budget is spent, and another merchant's.
    await createCampaign({ name: 'Welcome', kind: 'welcome', status: 'active', effect: { points: 100 } });
    await createCampaign({ name: 'Draft', kind: 'bonus_points', effect: { points: 1 } });
    await createCampaign({ name: 'Paused', kind: 'bonus_points', status: 'paused', effect: { points: 1 } });
    await createCampaign({
      name: 'Ended',
      kind: 'bonus_points',
      status: 'active',
      endsAt: new Date(Date.now() - hour).toISOString(),
      effect: { points: 1 },
    });
    const spent = await createCampaign({
      name: 'Spent',
      kind: 'bonus_points',
      status: 'active',
      effect: { points: 5 },
      limits: { totalPoints: 5 },
    });
    await t.db.updateTable('campaigns').set({ granted_points: 5 }).where('id', '=', spent).execute();
    const other = await createMerchantTeam(t.app, t.db);
    await createCampaign(
      { name: 'Theirs', kind: 'bonus_points', status: 'active', effect: { points: 7 } },
      other.owner,
    );

    const customer = await createTestCustomer(t.db, { merchant: team.merchant });
    const res = await client('/offers', customer.token);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.timeZone).toBe('Europe/Moscow');
    expect(body.offers.map((o: { id: string }) => o.id)).toEqual([double, birthday, once, later]);
    const [first, second, third, fourth] = body.offers;
    expect(first).toMatchObject({
      name: 'Двойные баллы на кофе',
      kind: 'multiplier',
      isLiveNow: true,
      effect: { multiplierBp: 20_000 },
      conditions: {
        categories: ['кофе'],
        outlets: [{ id: team.merchant.outletId, name: expect.any(String) }],
      },
      grantsLeft: null,
      description: expect.stringMatching(/^×2 баллов за покупку \(кофе; /),
    });
    expect(second).toMatchObject({
      kind: 'birthday',
      description: expect.stringMatching(/^\+300\sбаллов ко дню рождения$/),
    });
    expect(third).toMatchObject({ grantsLeft: 1, isLiveNow: true });
    expect(fourth).toMatchObject({ isLiveNow: false, conditions: { minTotal: 100_000 } });

    // One purchase uses up the once-per-customer bonus.
    await commitPurchaseViaApi(t.app, team.merchant, { customerId: customer.customerId, total: 10_000 });
    const after = (await client('/offers?lang=en', customer.token)).json();
    expect(after.offers.map((o: { id: string }) => o.id)).toEqual([double, birthday, later]);
    expect(after.offers[1].description).toMatch(/^\+300\spoints for your birthday$/);

    const bad = await client('/offers?lang=de', customer.token);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/lang/);
    const anonymous = await t.app.inject({ method: 'GET', url: '/api/v1/client/offers' });
    expect(anonymous.statusCode).toBe(401);
    await t.db
      .updateTable('campaigns')
      .set({ status: 'ended' })
      .where('merchant_id', '=', team.merchant.merchantId)
      .execute();
  });
});

describe('GET /api/v1/client/transactions', () => {
  it("carries each purchase's earn breakdown on its entries, not on refunds or adjustments", async () => {
    await t.db
      .updateTable('campaigns')
      .set({ status: 'ended' })
      .where('merchant_id', '=', team.merchant.merchantId)
      .execute();
    const bonus = await createCampaign({
      name: 'Бонус 30',
      kind: 'bonus_points',
      status: 'active',
      effect: { points: 30 },
    });
    const customer = await createTestCustomer(t.db, { merchant: team.merchant, points: 40 });
    const purchase = await commitPurchaseViaApi(t.app, team.merchant, {
      customerId: customer.customerId,
      total: 100_000,
    });
    expect((await postRefund(t.app, team.merchant, purchase.id, 10_000)).statusCode).toBe(201);
    const res = await client('/transactions', customer.token);
    expect(res.statusCode, res.body).toBe(200);
    const items = res.json().items as Array<{
      kind: string;
      purchaseId: string | null;
      earnBreakdown: unknown;
    }>;
    const breakdown = [
      { source: 'base', campaignId: null, name: 'Base', points: 50 },
      { source: 'campaign', campaignId: bonus, name: 'Бонус 30', points: 30 },
    ];
    const earns = items.filter((i) => i.kind === 'earn');
    expect(earns).toHaveLength(2);
    for (const earn of earns)
      expect(earn).toMatchObject({ purchaseId: purchase.id, earnBreakdown: breakdown });
    const others = items.filter((i) => i.kind !== 'earn');
    expect(new Set(others.map((i) => i.kind))).toEqual(new Set(['adjust', 'refund_revoke']));
    for (const entry of others) expect(entry.earnBreakdown).toBeNull();
  });
});
