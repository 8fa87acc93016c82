import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';
import { balanceOf, postCommit, postQuote, postRefund } from '../../../test/helpers/pos.js';

// The campaigns API (portal) and what campaigns do at the till: quote and commit explain the
// earn and agree, campaign points are lots refunds revoke, budgets hold under parallel commits,
// and a simulation writes nothing.

let t: TestApp;
let team: MerchantTeam;

beforeAll(async () => {
  t = await createTestApp();
  team = await createMerchantTeam(t.app, t.db);
}, 120_000);
afterAll(async () => {
  await t.close();
}, 120_000);

interface Breakdown {
  source: string;
  campaignId: string | null;
  name: string;
  points: number;
}

async function createCampaign(payload: object, session = team.owner) {
  const res = await portalRequest(t.app, session, { method: 'POST', url: '/campaigns', payload });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ campaign: { id: string; status: string } }>().campaign;
}

/** Ends every campaign of the merchant, so a test starts from the programme alone. */
async function endAllCampaigns() {
  await t.db
    .updateTable('campaigns')
    .set({ status: 'ended' })
    .where('merchant_id', '=', team.merchant.merchantId)
    .execute();
}

function quote(payload: object) {
  return postQuote(t.app, team.merchant, payload);
}

function purchaseBody(customerId: string, receipt: object = { total: 100_000 }) {
  return {
    customer: { customerId },
    receipt,
    orderId: `order-${randomUUID()}`,
    outletId: team.merchant.outletId,
  };
}

describe('merchant time zone', () => {
  it('defaults to Europe/Moscow, owners and admins change it, a bad zone is a 400 naming timeZone', async () => {
    const me = await portalRequest(t.app, team.manager, { method: 'GET', url: '/me' });
    expect(me.json().merchant).toMatchObject({ id: team.merchant.merchantId, timeZone: 'Europe/Moscow' });

    const bad = await portalRequest(t.app, team.owner, {
      method: 'PATCH',
      url: '/merchant',
      payload: { timeZone: 'Mars/Olympus' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details.issues[0].field).toBe('timeZone');
    const manager = await portalRequest(t.app, team.manager, {
      method: 'PATCH',
      url: '/merchant',
      payload: { timeZone: 'Asia/Vladivostok' },
    });
    expect(manager.statusCode).toBe(403);

    const ok = await portalRequest(t.app, team.admin, {
      method: 'PATCH',
      url: '/merchant',
      payload: { timeZone: 'Asia/Vladivostok' },
    });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().merchant.timeZone).toBe('Asia/Vladivostok');
    const after = await portalRequest(t.app, team.owner, { method: 'GET', url: '/me' });
    expect(after.json().merchant.timeZone).toBe('Asia/Vladivostok');
    const audit = await t.db
      .selectFrom('audit_log')
      .select(['action', 'after'])
      .where('merchant_id', '=', team.merchant.merchantId)
      .where('action', '=', 'merchant.update')
      .execute();
    expect(audit).toHaveLength(1);
    // Back to the default for the tests below.
    await portalRequest(t.app, team.owner, {
      method: 'PATCH',
      url: '/merchant',
      payload: { timeZone: 'Europe/Moscow' },
    });
  });
});

describe('campaigns API', () => {
  it('creates with defaults, reads, changes, deletes; managers read; cashiers see nothing', async () => {
    const created = await createCampaign({
      name: 'Double Tuesday',
      kind: 'multiplier',
      effect: { multiplierBp: 20_000 },
    });
    expect(created).toMatchObject({
      name: 'Double Tuesday',
      kind: 'multiplier',
      status: 'draft',
      startsAt: null,
      endsAt: null,
      schedule: null,
      conditions: {},
      effect: { multiplierBp: 20_000 },
      bonusLifetimeDays: null,
      limits: {},
      priority: 0,
      exclusive: false,
    });
    const list = await portalRequest(t.app, team.manager, { method: 'GET', url: '/campaigns' });
    expect(list.statusCode).toBe(200);
    expect(list.json().campaigns.map((c: { id: string }) => c.id)).toContain(created.id);
    const one = await portalRequest(t.app, team.manager, { method: 'GET', url: `/campaigns/${created.id}` });
    expect(one.json().campaign.id).toBe(created.id);

    for (const [session, method, url] of [
      [team.manager, 'POST', '/campaigns'],
      [team.manager, 'PATCH', `/campaigns/${created.id}`],
      [team.manager, 'DELETE', `/campaigns/${created.id}`],
      [team.cashier, 'GET', '/campaigns'],
    ] as const) {
      const res = await portalRequest(t.app, session, { method, url, payload: { name: 'x' } });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
    }

    const paused = await portalRequest(t.app, team.admin, {
      method: 'PATCH',
      url: `/campaigns/${created.id}`,
      payload: { status: 'paused', schedule: { weekdays: [2], from: '10:00', to: '12:00' } },
    });
    expect(paused.statusCode, paused.body).toBe(200);
    expect(paused.json().campaign).toMatchObject({
      status: 'paused',
      schedule: { weekdays: [2], from: '10:00', to: '12:00' },
    });

    const deleted = await portalRequest(t.app, team.owner, {
      method: 'DELETE',
      url: `/campaigns/${created.id}`,
    });
    expect(deleted.statusCode).toBe(204);
    const gone = await portalRequest(t.app, team.owner, { method: 'GET', url: `/campaigns/${created.id}` });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.code).toBe('campaign_not_found');

    const actions = await t.db
      .selectFrom('audit_log')
      .select('action')
      .where('entity_id', '=', created.id)
      .orderBy('id')
      .execute();
    expect(actions.map((a) => a.action)).toEqual(['campaign.create', 'campaign.update', 'campaign.delete']);
  });

  it('names the field of invalid input', async () => {
    const cases: Array<[object, string]> = [
      [{ name: 'x', kind: 'multiplier', effect: { points: 5 } }, 'effect'],
      [{ name: 'x', kind: 'bonus_points', effect: { points: 0 } }, 'effect.points'],
      [{ name: 'x', kind: 'birthday', effect: { points: 5 } }, 'effect.daysBefore'],
      [{ name: 'x', kind: 'lottery', effect: {} }, 'kind'],
      [
        {
          name: 'x',
          kind: 'bonus_points',
          effect: { points: 5 },
          schedule: { weekdays: [8], from: '10:00', to: '12:00' },
        },
        'schedule.weekdays[0]',
      ],
      [
        {
          name: 'x',
          kind: 'bonus_points',
          effect: { points: 5 },
          schedule: { weekdays: [1], from: '24:00', to: '12:00' },
        },
        'schedule.from',
      ],
      [
        {
          name: 'x',
          kind: 'bonus_points',
          effect: { points: 5 },
          startsAt: '2026-02-01T00:00:00Z',
          endsAt: '2026-01-01T00:00:00Z',
        },
        'endsAt',
      ],
      [{ name: 'x', kind: 'bonus_points', effect: { points: 5 }, status: 'running' }, 'status'],
      [
        { name: 'x', kind: 'bonus_points', effect: { points: 5 }, limits: { totalPoints: -1 } },
        'limits.totalPoints',
      ],
      [{ name: '', kind: 'bonus_points', effect: { points: 5 } }, 'name'],
    ];
    for (const [payload, field] of cases) {
      const res = await portalRequest(t.app, team.owner, { method: 'POST', url: '/campaigns', payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      const fields = res.json().error.details.issues.map((i: { field: string }) => i.field);
      expect(
        fields.some((f: string) => f.startsWith(field)),
        `${fields} for ${field}`,
      ).toBe(true);
    }
    const campaign = await createCampaign({ name: 'x', kind: 'bonus_points', effect: { points: 5 } });
    const res = await portalRequest(t.app, team.owner, {
      method: 'PATCH',
      url: `/campaigns/${campaign.id}`,
      payload: { kind: 'multiplier' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details.issues[0].field).toBe('effect.multiplierBp');
  });

  it("another merchant's campaign is a 404", async () => {
    const other = await createMerchantTeam(t.app, t.db, { name: 'Other' });
    const campaign = await createCampaign({ name: 'mine', kind: 'bonus_points', effect: { points: 5 } });
    for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
      const res = await portalRequest(t.app, other.owner, {
        method,
        url: `/campaigns/${campaign.id}`,
        payload: method === 'PATCH' ? { name: 'theirs' } : undefined,
      });
      expect(res.statusCode, method).toBe(404);
    }
    const sim = await portalRequest(t.app, other.owner, {
      method: 'POST',
      url: `/campaigns/${campaign.id}/simulate`,
      payload: { from: '2026-01-01', to: '2026-01-31' },
    });
    expect(sim.statusCode).toBe(404);
  });
});

describe('campaigns at the till', () => {
  it('quote, commit and GET show the same breakdown; a refund revokes the campaign points too', async () => {
    await endAllCampaigns();
    const x2 = await createCampaign({
      name: 'x2',
      kind: 'multiplier',
      status: 'active',
      effect: { multiplierBp: 20_000 },
      bonusLifetimeDays: 30,
    });
    const bonus = await createCampaign({
      name: 'Bonus',
      kind: 'bonus_points',
      status: 'active',
      effect: { points: 15 },
      priority: 5,
    });
    const { customerId } = await createTestCustomer(t.db, { merchant: team.merchant });
    const body = purchaseBody(customerId);
    const q = await quote({ customer: body.customer, receipt: body.receipt, outletId: body.outletId });
    expect(q.statusCode, q.body).toBe(200);
    const expected: Breakdown[] = [
      { source: 'base', campaignId: null, name: 'Base', points: 50 },
      { source: 'campaign', campaignId: bonus.id, name: 'Bonus', points: 15 },
      { source: 'campaign', campaignId: x2.id, name: 'x2', points: 50 },
    ];
    expect(q.json()).toMatchObject({ earnPoints: 115, earnBreakdown: expected });

    const commit = await postCommit(t.app, team.merchant, body);
    expect(commit.statusCode, commit.body).toBe(201);
    expect(commit.json().purchase).toMatchObject({ earnedPoints: 115, earnBreakdown: expected });
    expect(commit.json().balance.available).toBe(115);
    const purchaseId = commit.json().purchase.id;
    const get = await t.app.inject({
      method: 'GET',
      url: `/api/v1/integration/purchases/${purchaseId}`,
      headers: { 'x-api-key': team.merchant.apiKey },
    });
    expect(get.json().purchase).toMatchObject({ earnedPoints: 115, earnBreakdown: expected });

    // The x2 points are a lot of their own with the campaign's 30-day lifetime.
    const lots = await t.db
      .selectFrom('point_lots')
      .select(['points', 'campaign_id', 'expires_at', 'available_at'])
      .where('purchase_id', '=', purchaseId)
      .orderBy('id')
      .execute();
    expect(lots.map((l) => [l.points, l.campaign_id])).toEqual([
      [50, null],
      [15, bonus.id],
      [50, x2.id],
    ]);
    const x2Lot = lots[2];
    expect(x2Lot?.expires_at && x2Lot.expires_at.getTime() - x2Lot.available_at.getTime()).toBe(
      30 * 86_400_000,
    );
    const events = await t.db
      .selectFrom('outbox_events')
      .select(['payload'])
      .where('type', '=', 'bonus.granted')
      .where(sql<boolean>`payload->>'purchaseId' = ${purchaseId}`)
      .execute();
    expect(events.map((e) => (e.payload as { points: number }).points).sort()).toEqual([15, 50]);

    const refund = await postRefund(t.app, team.merchant, purchaseId, undefined);
    expect(refund.statusCode, refund.body).toBe(201);
    expect(refund.json().refund).toMatchObject({ revokedPoints: 115, unrecoveredPoints: 0 });
    expect((await balanceOf(t.app, team.merchant, customerId)).available).toBe(0);
  });

  it('quote equals commit over random receipts and campaigns', async () => {
    const categories = ['coffee', 'food', 'tea'];
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            kind: fc.constantFrom('multiplier', 'bonus_points'),
            multiplierBp: fc.integer({ min: 10_000, max: 40_000 }),
            points: fc.integer({ min: 1, max: 200 }),
            priority: fc.integer({ min: 0, max: 3 }),
            exclusive: fc.boolean(),
            categories: fc.option(fc.subarray(categories, { minLength: 1 }), { nil: undefined }),
            minTotal: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
            totalPoints: fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }),
            perCustomer: fc.option(fc.integer({ min: 1, max: 2 }), { nil: undefined }),
          }),
          { maxLength: 4 },
        ),
        fc.array(
          fc.array(
            fc.record({
              category: fc.constantFrom(...categories),
              amount: fc.integer({ min: 0, max: 50_000 }),
            }),
            {
              minLength: 1,
              maxLength: 4,
            },
          ),
          { minLength: 1, maxLength: 3 },
        ),
        async (specs, receipts) => {
          await endAllCampaigns();
          for (const s of specs) {
            await createCampaign({
              name: `${s.kind} ${s.priority}`,
              kind: s.kind,
              status: 'active',
              effect: s.kind === 'multiplier' ? { multiplierBp: s.multiplierBp } : { points: s.points },
              priority: s.priority,
              exclusive: s.exclusive,
              conditions: { categories: s.categories, minTotal: s.minTotal },
              limits: { totalPoints: s.totalPoints, perCustomer: s.perCustomer },
            });
          }
          const { customerId } = await createTestCustomer(t.db, { merchant: team.merchant });
          for (const items of receipts) {
            const body = purchaseBody(customerId, { total: items.reduce((a, i) => a + i.amount, 0), items });
            const q = await quote({
              customer: body.customer,
              receipt: body.receipt,
              outletId: body.outletId,
            });
            expect(q.statusCode, q.body).toBe(200);
            const c = await postCommit(t.app, team.merchant, body);
            expect(c.statusCode, c.body).toBe(201);
            expect(c.json().purchase.earnedPoints).toBe(q.json().earnPoints);
            expect(c.json().purchase.earnBreakdown).toEqual(q.json().earnBreakdown);
            const sum = (q.json().earnBreakdown as Breakdown[]).reduce((a, i) => a + i.points, 0);
            expect(sum).toBe(q.json().earnPoints);
          }
        },
      ),
      { numRuns: 12 },
    );
  }, 300_000);

  it('parallel commits never overspend totalPoints; perCustomer counts grants', async () => {
    await endAllCampaigns();
    const budget = await createCampaign({
      name: 'Budget',
      kind: 'bonus_points',
      status: 'active',
      effect: { points: 30 },
      limits: { totalPoints: 100 },
    });
    const customers = await Promise.all(
      Array.from({ length: 8 }, () => createTestCustomer(t.db, { merchant: team.merchant })),
    );
    const results = await Promise.all(
      customers.map((c) => postCommit(t.app, team.merchant, purchaseBody(c.customerId))),
    );
    for (const r of results) expect(r.statusCode, r.body).toBe(201);
    const granted = results.map(
      (r) =>
        (r.json().purchase.earnBreakdown as Breakdown[]).find((i) => i.campaignId === budget.id)?.points ?? 0,
    );
    expect(granted.reduce((a, b) => a + b, 0)).toBe(100);
    expect(granted.filter((g) => g > 0).sort()).toEqual([10, 30, 30, 30]);
    const { total } = await t.db
      .selectFrom('point_lots')
      .select((eb) => eb.fn.sum<number>('points').as('total'))
      .where('campaign_id', '=', budget.id)
      .executeTakeFirstOrThrow();
    expect(Number(total)).toBe(100);
    const row = await t.db
      .selectFrom('campaigns')
      .select('granted_points')
      .where('id', '=', budget.id)
      .executeTakeFirstOrThrow();
    expect(row.granted_points).toBe(100);
    // The budget is spent: the quote shows no campaign.
    const q = await quote({
      customer: { customerId: customers[0]?.customerId },
      receipt: { total: 100_000 },
    });
    expect((q.json().earnBreakdown as Breakdown[]).some((i) => i.source === 'campaign')).toBe(false);

    await endAllCampaigns();
    const once = await createCampaign({
      name: 'Once',
      kind: 'bonus_points',
      status: 'active',
      effect: { points: 7 },
      limits: { perCustomer: 1 },
    });
    const { customerId } = await createTestCustomer(t.db, { merchant: team.merchant });
    const twice = await Promise.all(
      [1, 2].map(() => postCommit(t.app, team.merchant, purchaseBody(customerId))),
    );
    const onceGrants = twice.map(
      (r) => (r.json().purchase.earnBreakdown as Breakdown[]).filter((i) => i.campaignId === once.id).length,
    );
    expect(onceGrants.sort()).toEqual([0, 1]);
  });
});

describe('simulate', () => {
  it("replays the period's purchases under the campaign by day in the merchant's zone and writes nothing", async () => {
    // A merchant of its own, so only these purchases are in the period.
    const sim = await createMerchantTeam(t.app, t.db, { name: 'Sim' });
    const draft = await createCampaign(
      {
        name: 'What if',
        kind: 'multiplier',
        effect: { multiplierBp: 30_000 },
        conditions: { minTotal: 50_000 },
      },
      sim.owner,
    );
    const { customerId } = await createTestCustomer(t.db, { merchant: sim.merchant });
    const other = await createTestCustomer(t.db, { merchant: sim.merchant });
    for (const [who, total] of [
      [customerId, 100_000],
      [customerId, 20_000],
      [other.customerId, 60_000],
    ] as const) {
      const body = { ...purchaseBody(who, { total }), outletId: sim.merchant.outletId };
      expect((await postCommit(t.app, sim.merchant, body)).statusCode).toBe(201);
    }
    const day = (at: Date) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Moscow' }).format(at);
    const today = day(new Date());
    const from = day(new Date(Date.now() - 10 * 86_400_000));

    const counts = async () => {
      const { rows } = await sql<{ n: string }>`
        select (select count(*) from purchases) + (select count(*) from point_lots) + (select count(*) from ledger_entries)
             + (select count(*) from outbox_events) + (select count(*) from campaigns) + (select count(*) from audit_log)
             + (select count(*) from campaign_grants) as n`.execute(t.db);
      return rows[0]?.n;
    };
    const before = await counts();
    const res = await portalRequest(t.app, sim.manager, {
      method: 'POST',
      url: `/campaigns/${draft.id}/simulate`,
      payload: { from, to: today },
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    // 5% earn: 100 000 -> 50 points (+100 at x3), 60 000 -> 30 (+60); 20 000 is under minTotal.
    expect(body).toMatchObject({
      purchases: 2,
      customers: 2,
      extraPoints: 160,
      extraPointsValueMinor: 16_000,
    });
    expect(body.byDay.at(-1)).toEqual({ date: today, purchases: 2, extraPoints: 160 });
    expect(body.byDay).toHaveLength(11);
    expect(body.byDay[0]).toEqual({ date: from, purchases: 0, extraPoints: 0 });
    expect(await counts()).toBe(before);

    const bad = await portalRequest(t.app, sim.owner, {
      method: 'POST',
      url: `/campaigns/${draft.id}/simulate`,
      payload: { from: '2026-02-01', to: '2026-01-01' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details.issues[0].field).toBe('to');
  });
});
