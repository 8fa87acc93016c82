import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';
import { DEFAULT_RULES, type ProgrammeRules } from '../programme/programme.schema.js';

// Programme settings in the portal: read, replace (audited, applied to the next POS request on
// every replica), and the live preview that must agree with the integration quote to the point.

let t: TestApp;
let team: MerchantTeam;

const TIERED: ProgrammeRules = {
  ...DEFAULT_RULES,
  earnRateBp: 300,
  tiers: [
    { name: 'Серебро', minSpend: 50_000, earnRateBp: 700 },
    { name: 'Золото', minSpend: 500_000, earnRateBp: 1000 },
  ],
  excludedCategories: ['tobacco'],
};

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  team = await createMerchantTeam(t.app, t.db);
});
afterAll(async () => {
  await t.close();
});

function quoteViaApi(payload: object) {
  return t.app.inject({
    method: 'POST',
    url: '/api/v1/integration/purchases/quote',
    headers: { 'x-api-key': team.merchant.apiKey },
    payload,
  });
}

describe('programme settings', () => {
  it('replaces the rules, records before and after, and the next POS quote uses them', async () => {
    const customer = await createTestCustomer(t.db, { merchant: team.merchant });
    const quoteBody = { customer: { customerId: customer.customerId }, receipt: { total: 10_000 } };
    expect((await quoteViaApi(quoteBody)).json().earnPoints).toBe(5);

    const current = await portalRequest(t.app, team.manager, { method: 'GET', url: '/programme' });
    expect(current.json()).toEqual({ rules: DEFAULT_RULES });
    const saved = await portalRequest(t.app, team.admin, {
      method: 'PUT',
      url: '/programme',
      payload: { rules: TIERED },
    });
    expect(saved.statusCode).toBe(200);
    expect(saved.json()).toEqual({ rules: TIERED });

    await expect.poll(async () => (await quoteViaApi(quoteBody)).json().earnPoints).toBe(3);

    const audit = await portalRequest(t.app, team.owner, { method: 'GET', url: '/audit-log?limit=5' });
    const entry = audit.json().items.find((e: { action: string }) => e.action === 'programme.update');
    expect(entry).toMatchObject({
      actor: team.admin.email,
      actorUserId: team.admin.userId,
      entityType: 'programme',
      entityId: team.merchant.merchantId,
      before: DEFAULT_RULES,
      after: TIERED,
      ip: '127.0.0.1',
    });
  });

  it('rejects invalid rules naming the field, and changes nothing', async () => {
    const res = await portalRequest(t.app, team.owner, {
      method: 'PUT',
      url: '/programme',
      payload: {
        rules: { ...TIERED, tiers: [...TIERED.tiers, { name: 'Медь', minSpend: 10, earnRateBp: 100 }] },
      },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/^rules\.tiers\[2\]\.minSpend/);
    const missing = await portalRequest(t.app, team.owner, { method: 'PUT', url: '/programme', payload: {} });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.message).toMatch(/^rules/);
  });
});

describe('POST /programme/preview', () => {
  it('equals the integration quote for the same customer and receipt', async () => {
    await portalRequest(t.app, team.owner, { method: 'PUT', url: '/programme', payload: { rules: TIERED } });
    const customer = await createTestCustomer(t.db, { merchant: team.merchant, points: 400 });
    await commitPurchaseViaApi(t.app, team.merchant, { customerId: customer.customerId, total: 60_000 });
    const receipt = {
      total: 25_000,
      items: [
        { amount: 20_000, category: 'coffee' },
        { amount: 5_000, category: 'tobacco' },
      ],
    };
    const quote = await quoteViaApi({
      customer: { customerId: customer.customerId },
      receipt,
      redeemPoints: 50,
    });
    expect(quote.statusCode).toBe(200);
    const q = quote.json();
    expect(q.tier).toMatchObject({ name: 'Серебро', spend: 60_000 });

    const preview = await portalRequest(t.app, team.manager, {
      method: 'POST',
      url: '/programme/preview',
      payload: { receipt, redeemPoints: 50, availablePoints: q.balance.available, tierSpend: q.tier.spend },
    });
    expect(preview.statusCode).toBe(200);
    const p = preview.json();
    for (const field of [
      'earnPoints',
      'maxRedeemPoints',
      'redeemPoints',
      'discount',
      'payable',
      'eligibleAmount',
      'earnRateBp',
    ]) {
      expect(p[field], field).toBe(q[field]);
    }
    expect(p.tier).toEqual({ name: 'Серебро', minSpend: 50_000, earnRateBp: 700 });
  });

  it('tries unsaved rules without saving them, and answers 422 like the quote', async () => {
    const draft = { ...TIERED, earnRateBp: 2000, tiers: [] };
    const preview = await portalRequest(t.app, team.owner, {
      method: 'POST',
      url: '/programme/preview',
      payload: { rules: draft, receipt: { total: 10_000 } },
    });
    expect(preview.json()).toMatchObject({
      earnPoints: 20,
      earnRateBp: 2000,
      tier: null,
      maxRedeemPoints: 50,
    });
    const stored = await portalRequest(t.app, team.owner, { method: 'GET', url: '/programme' });
    expect(stored.json().rules.earnRateBp).toBe(TIERED.earnRateBp);

    const tooMuch = await portalRequest(t.app, team.owner, {
      method: 'POST',
      url: '/programme/preview',
      payload: { receipt: { total: 10_000 }, redeemPoints: 51 },
    });
    expect(tooMuch.statusCode).toBe(422);
    expect(tooMuch.json().error).toMatchObject({ code: 'redeem_limit_exceeded', details: { max: 50 } });
    const poor = await portalRequest(t.app, team.owner, {
      method: 'POST',
      url: '/programme/preview',
      payload: { receipt: { total: 10_000 }, redeemPoints: 10, availablePoints: 5 },
    });
    expect(poor.statusCode).toBe(422);
    expect(poor.json().error.code).toBe('insufficient_points');
  });
});

describe('POST /programme/preview with campaigns', () => {
  async function createCampaign(payload: object) {
    const res = await portalRequest(t.app, team.owner, { method: 'POST', url: '/campaigns', payload });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ campaign: { id: string } }>().campaign;
  }
  function preview(payload: object, session = team.manager) {
    return portalRequest(t.app, session, { method: 'POST', url: '/programme/preview', payload });
  }

  it('explains the earn with the live campaigns like the quote, at the given moment and outlet', async () => {
    await portalRequest(t.app, team.owner, {
      method: 'PUT',
      url: '/programme',
      payload: { rules: { ...DEFAULT_RULES, earnRateBp: 500 } },
    });
    const double = await createCampaign({
      name: 'Double at the outlet',
      kind: 'multiplier',
      status: 'active',
      effect: { multiplierBp: 20_000 },
      conditions: { outletIds: [team.merchant.outletId] },
    });
    const customer = await createTestCustomer(t.db, { merchant: team.merchant });
    const receipt = { total: 100_000 };
    const q = (
      await quoteViaApi({
        customer: { customerId: customer.customerId },
        receipt,
        outletId: team.merchant.outletId,
      })
    ).json();
    expect(q.earnBreakdown).toEqual([
      { source: 'base', campaignId: null, name: 'Base', points: 50 },
      { source: 'campaign', campaignId: double.id, name: 'Double at the outlet', points: 50 },
    ]);
    const atOutlet = await preview({ receipt, outletId: team.merchant.outletId });
    expect(atOutlet.statusCode, atOutlet.body).toBe(200);
    expect(atOutlet.json()).toMatchObject({ earnPoints: q.earnPoints, earnBreakdown: q.earnBreakdown });
    // Elsewhere the outlet condition does not hold; before the campaign started it did not run.
    expect((await preview({ receipt })).json().earnBreakdown).toEqual([q.earnBreakdown[0]]);
    await t.db
      .updateTable('campaigns')
      .set({ starts_at: new Date('2026-01-01T00:00:00Z') })
      .where('id', '=', double.id)
      .execute();
    const before = await preview({ receipt, outletId: team.merchant.outletId, at: '2025-12-31T23:00:00Z' });
    expect(before.json()).toMatchObject({ earnPoints: 50 });
    await t.db.updateTable('campaigns').set({ status: 'ended' }).where('id', '=', double.id).execute();
  });

  it('applies a draft campaign as if active, in place of the stored one, and writes nothing', async () => {
    const stored = await createCampaign({
      name: 'Paused bonus',
      kind: 'bonus_points',
      status: 'paused',
      effect: { points: 30 },
      limits: { totalPoints: 1000 },
    });
    await t.db.updateTable('campaigns').set({ granted_points: 990 }).where('id', '=', stored.id).execute();
    const receipt = { total: 100_000, items: [{ amount: 100_000, category: 'coffee' }] };
    const draft = {
      name: 'Coffee bonus',
      kind: 'bonus_points',
      effect: { points: 40 },
      conditions: { categories: ['coffee'] },
    };
    const unsaved = await preview({ receipt, campaign: draft });
    expect(unsaved.statusCode, unsaved.body).toBe(200);
    expect(unsaved.json().earnBreakdown).toContainEqual({
      source: 'campaign',
      campaignId: null,
      name: 'Coffee bonus',
      points: 40,
    });
    expect(unsaved.json().earnPoints).toBe(50 + 40);

    // The edited campaign keeps its budget: 10 points left of 1000.
    const edited = await preview({
      receipt,
      campaign: { ...draft, id: stored.id, limits: { totalPoints: 1000 } },
    });
    expect(edited.json().earnBreakdown).toEqual([
      { source: 'base', campaignId: null, name: 'Base', points: 50 },
      { source: 'campaign', campaignId: stored.id, name: 'Coffee bonus', points: 10 },
    ]);
    const after = await t.db
      .selectFrom('campaigns')
      .selectAll()
      .where('id', '=', stored.id)
      .executeTakeFirstOrThrow();
    expect(after).toMatchObject({ name: 'Paused bonus', status: 'paused', granted_points: 990 });
    expect(await t.db.selectFrom('campaign_grants').selectAll().execute()).toEqual([]);

    // A draft outside its schedule at that moment adds nothing (Monday 10:00 in Moscow).
    const weekend = { ...draft, schedule: { weekdays: [6, 7], from: '00:00', to: '00:00' } };
    const monday = await preview({ receipt, campaign: weekend, at: '2026-11-30T07:00:00Z' });
    expect(monday.json().earnPoints).toBe(50);
  });

  it('refuses an invalid draft naming the field, and another merchant campaign id', async () => {
    const bad = await preview({
      receipt: { total: 100 },
      campaign: { name: 'x', kind: 'multiplier', effect: {} },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/^campaign\.effect\.multiplierBp/);
    const other = await createMerchantTeam(t.app, t.db);
    const theirs = await portalRequest(t.app, other.owner, {
      method: 'POST',
      url: '/campaigns',
      payload: { name: 'Theirs', kind: 'bonus_points', effect: { points: 5 } },
    });
    const foreign = await preview({
      receipt: { total: 100 },
      campaign: { name: 'x', kind: 'bonus_points', effect: { points: 5 }, id: theirs.json().campaign.id },
    });
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json().error.code).toBe('campaign_not_found');
  });
});
