import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCampaign,
  createTestCustomer,
  createTestMerchant,
  nextPhone,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { findLedgerViolations, findProvenanceViolations } from '../../../test/helpers/ledger.js';
import { commitPayload, postCommit, postRefund } from '../../../test/helpers/pos.js';

// POS enrollment (POST /api/v1/integration/customers), welcome and referral campaigns.

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

function enroll(merchant: TestMerchant, body: object, key: string = randomUUID()) {
  return t.app.inject({
    method: 'POST',
    url: '/api/v1/integration/customers',
    headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': key },
    payload: body,
  });
}

async function referralCodeOf(customerId: string): Promise<string> {
  const row = await t.db
    .selectFrom('customers')
    .select('referral_code')
    .where('id', '=', customerId)
    .executeTakeFirstOrThrow();
  return row.referral_code;
}

async function eventsOf(merchant: TestMerchant, type: string) {
  const rows = await t.db
    .selectFrom('outbox_events')
    .select('payload')
    .where('merchant_id', '=', merchant.merchantId)
    .where('type', '=', type)
    .orderBy('id')
    .execute();
  return rows.map((r) => r.payload as Record<string, unknown>);
}

describe('POST /integration/customers', () => {
  it('enrolls a customer: 201 with a referral code, the balance including the welcome bonus', async () => {
    const merchant = await createTestMerchant(t.db);
    const welcome = await createTestCampaign(t.db, merchant, { kind: 'welcome', effect: { points: 150 } });
    const res = await enroll(merchant, { phone: '8 (999) 555-01-01', name: 'Вера', birthDate: '1990-02-28' });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({
      customer: {
        id: expect.any(String),
        phone: '+79995550101',
        name: 'Вера',
        referralCode: expect.any(String),
      },
      balance: { available: 150, pending: 0, held: 0 },
    });
    expect(body.customer.referralCode).toMatch(/^[A-HJKMNP-Z2-9]{8}$/);
    const stored = await t.db
      .selectFrom('customers')
      .select([
        (eb) => eb.fn<string>('to_char', ['birth_date', eb.val('YYYY-MM-DD')]).as('birth'),
        'referral_code',
      ])
      .where('id', '=', body.customer.id)
      .executeTakeFirstOrThrow();
    expect(stored).toEqual({ birth: '1990-02-28', referral_code: body.customer.referralCode });

    expect(await eventsOf(merchant, 'customer.enrolled')).toEqual([
      {
        customerId: body.customer.id,
        phone: '+79995550101',
        name: 'Вера',
        source: 'pos',
        referredBy: null,
        referralCode: body.customer.referralCode,
        welcomePoints: 150,
        balance: { available: 150, pending: 0, held: 0 },
        occurredAt: expect.any(String),
      },
    ]);
    expect(await eventsOf(merchant, 'customer.created')).toHaveLength(1);
    const [granted] = await eventsOf(merchant, 'bonus.granted');
    expect(granted).toMatchObject({ campaignId: welcome.id, kind: 'welcome', points: 150, purchaseId: null });
    const lots = await t.db
      .selectFrom('point_lots')
      .select(['source', 'campaign_id', 'purchase_id', 'points', 'expires_at'])
      .where('customer_id', '=', body.customer.id)
      .execute();
    expect(lots).toEqual([
      // The programme's lifetime (365 days) without the campaign's own.
      {
        source: 'bonus',
        campaign_id: welcome.id,
        purchase_id: null,
        points: 150,
        expires_at: expect.any(Date),
      },
    ]);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('replays the same key and body, refuses the key with another body, 409 for an existing phone', async () => {
    const merchant = await createTestMerchant(t.db);
    const phone = nextPhone();
    const key = randomUUID();
    const first = await enroll(merchant, { phone }, key);
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const replay = await enroll(merchant, { phone }, key);
    expect(replay.statusCode).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json()).toEqual(first.json());

    const reused = await enroll(merchant, { phone: nextPhone() }, key);
    expect(reused.statusCode).toBe(422);
    expect(reused.json().error.code).toBe('idempotency_key_reuse');

    const again = await enroll(merchant, { phone, name: 'Другое имя' });
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatchObject({
      code: 'customer_exists',
      details: { customerId: first.json().customer.id },
    });
  });

  it('requires an Idempotency-Key and answers 400 naming a bad field', async () => {
    const merchant = await createTestMerchant(t.db);
    const noKey = await t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers',
      headers: { 'x-api-key': merchant.apiKey },
      payload: { phone: nextPhone() },
    });
    expect(noKey.statusCode).toBe(400);
    expect(noKey.json().error.message).toMatch(/idempotency-key/);

    for (const birthDate of ['1990-02-30', '31.12.1990', '2999-01-01']) {
      const res = await enroll(merchant, { phone: nextPhone(), birthDate });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({
        code: 'validation_error',
        details: { issues: [expect.objectContaining({ field: 'birthDate' })] },
      });
    }
    const badPhone = await enroll(merchant, { phone: '12' });
    expect(badPhone.statusCode).toBe(400);
    expect(badPhone.json().error.details.issues[0].field).toBe('phone');

    const unknownCode = await enroll(merchant, { phone: nextPhone(), referralCode: 'ZZZZ2222' });
    expect(unknownCode.statusCode).toBe(400);
    expect(unknownCode.json().error).toMatchObject({
      code: 'referral_code_not_found',
      details: { field: 'referralCode' },
    });
    // A foreign outlet is refused like in every other call; no context at all is accepted.
    const other = await createTestMerchant(t.db);
    const foreign = await enroll(merchant, { phone: nextPhone(), outletId: other.outletId });
    expect(foreign.statusCode).toBe(404);
    const withOutlet = await enroll(merchant, { phone: nextPhone(), outletId: merchant.outletId });
    expect(withOutlet.statusCode).toBe(201);
  });

  it('20 parallel enrollments of one phone make one customer with one welcome bonus', async () => {
    const merchant = await createTestMerchant(t.db);
    await createTestCampaign(t.db, merchant, { kind: 'welcome', effect: { points: 100 } });
    const phone = nextPhone();
    const answers = await Promise.all(Array.from({ length: 20 }, () => enroll(merchant, { phone })));
    const created = answers.filter((r) => r.statusCode === 201);
    expect(created).toHaveLength(1);
    const id = created[0]?.json().customer.id;
    for (const r of answers.filter((a) => a.statusCode !== 201)) {
      expect(r.statusCode).toBe(409);
      expect(r.json().error).toMatchObject({ code: 'customer_exists', details: { customerId: id } });
    }
    const customers = await t.db
      .selectFrom('customers')
      .select('id')
      .where('merchant_id', '=', merchant.merchantId)
      .execute();
    expect(customers).toEqual([{ id }]);
    expect(await eventsOf(merchant, 'bonus.granted')).toHaveLength(1);
    const balance = await t.db
      .selectFrom('balances')
      .select('available')
      .where('customer_id', '=', id)
      .executeTakeFirstOrThrow();
    expect(balance.available).toBe(100);
  });
});

describe('welcome campaigns', () => {
  it('stack by priority: an exclusive one stops lower ones; drafts, ended and other kinds grant nothing', async () => {
    const merchant = await createTestMerchant(t.db);
    await createTestCampaign(t.db, merchant, { kind: 'welcome', effect: { points: 10 }, priority: 1 });
    await createTestCampaign(t.db, merchant, {
      kind: 'welcome',
      effect: { points: 50 },
      priority: 5,
      exclusive: true,
    });
    await createTestCampaign(t.db, merchant, { kind: 'welcome', effect: { points: 7 }, priority: 9 });
    await createTestCampaign(t.db, merchant, { kind: 'welcome', effect: { points: 1000 }, status: 'draft' });
    await createTestCampaign(t.db, merchant, {
      kind: 'welcome',
      effect: { points: 1000 },
      endsAt: new Date(Date.now() - 60_000).toISOString(),
      startsAt: new Date(Date.now() - 3_600_000).toISOString(),
    });
    await createTestCampaign(t.db, merchant, { kind: 'bonus_points', effect: { points: 1000 } });
    const res = await enroll(merchant, { phone: nextPhone() });
    expect(res.json().balance).toEqual({ available: 57, pending: 0, held: 0 });
  });

  it('a totalPoints budget caps welcome bonuses', async () => {
    const merchant = await createTestMerchant(t.db);
    await createTestCampaign(t.db, merchant, {
      kind: 'welcome',
      effect: { points: 40 },
      limits: { totalPoints: 100 },
    });
    const balances = [];
    for (let i = 0; i < 4; i++)
      balances.push((await enroll(merchant, { phone: nextPhone() })).json().balance.available);
    expect(balances).toEqual([40, 40, 20, 0]);
  });
});

describe('referral campaigns', () => {
  it("grant both after the referee's first purchase only, and a refund keeps them", async () => {
    const merchant = await createTestMerchant(t.db);
    const campaign = await createTestCampaign(t.db, merchant, {
      kind: 'referral',
      effect: { referrerPoints: 300, refereePoints: 200 },
    });
    const referrer = await createTestCustomer(t.db, { merchant });
    const code = await referralCodeOf(referrer.customerId);
    const joined = await enroll(merchant, { phone: nextPhone(), referralCode: code.toLowerCase() });
    expect(joined.statusCode).toBe(201);
    const refereeId = joined.json().customer.id;
    const stored = await t.db
      .selectFrom('customers')
      .select('referred_by')
      .where('id', '=', refereeId)
      .executeTakeFirstOrThrow();
    expect(stored.referred_by).toBe(referrer.customerId);
    expect(joined.json().balance.available).toBe(0);

    // Earn 10% at 1 point per minor unit... base earn of 1000 is whatever the rules give; the
    // referral points come on top, outside the purchase.
    const first = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId: refereeId, total: 1000 }),
    );
    expect(first.statusCode).toBe(201);
    const earned = first.json().purchase.earnedPoints;
    expect(first.json().balance.available).toBe(earned + 200);
    const second = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId: refereeId, total: 1000 }),
    );
    expect(second.json().balance.available).toBe(earned * 2 + 200);

    const referrerBalance = await t.db
      .selectFrom('balances')
      .select('available')
      .where('customer_id', '=', referrer.customerId)
      .executeTakeFirstOrThrow();
    expect(referrerBalance.available).toBe(300);
    const grants = (await eventsOf(merchant, 'bonus.granted')).map((e) => [e.customerId, e.points, e.kind]);
    expect(grants).toEqual([
      [refereeId, 200, 'referral'],
      [referrer.customerId, 300, 'referral'],
    ]);
    const occasions = await t.db
      .selectFrom('campaign_occasions')
      .select(['customer_id', 'occasion'])
      .where('campaign_id', '=', campaign.id)
      .orderBy('points')
      .execute();
    expect(occasions).toEqual([
      { customer_id: refereeId, occasion: 'referee' },
      { customer_id: referrer.customerId, occasion: `referrer:${refereeId}` },
    ]);

    // The refund of the first purchase revokes its earn only.
    const refund = await postRefund(t.app, merchant, first.json().purchase.id, undefined);
    expect(refund.statusCode).toBe(201);
    expect(refund.json().balance.available).toBe(earned + 200);
    expect(await findLedgerViolations(t.db)).toEqual([]);
    expect(await findProvenanceViolations(t.db)).toEqual([]);
  });

  it('parallel first purchases of a referred customer grant the referral once', async () => {
    const merchant = await createTestMerchant(t.db);
    await createTestCampaign(t.db, merchant, {
      kind: 'referral',
      effect: { referrerPoints: 40, refereePoints: 60 },
    });
    const referrer = await createTestCustomer(t.db, { merchant });
    const code = await referralCodeOf(referrer.customerId);
    const refereeId = (await enroll(merchant, { phone: nextPhone(), referralCode: code })).json().customer.id;
    const commits = await Promise.all(
      Array.from({ length: 8 }, () =>
        postCommit(t.app, merchant, commitPayload(merchant, { customerId: refereeId, total: 1000 })),
      ),
    );
    expect(commits.map((c) => c.statusCode)).toEqual(Array(8).fill(201));
    const grants = (await eventsOf(merchant, 'bonus.granted')).map((e) => [e.customerId, e.points]);
    expect(grants.sort()).toEqual(
      [
        [refereeId, 60],
        [referrer.customerId, 40],
      ].sort(),
    );
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('a customer cannot be their own referrer', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await expect(
      t.db.updateTable('customers').set({ referred_by: customerId }).where('id', '=', customerId).execute(),
    ).rejects.toThrow(/customers_referred_by_not_self/);
  });

  it('grants nothing when the first purchase happened before the campaign', async () => {
    const merchant = await createTestMerchant(t.db);
    const referrer = await createTestCustomer(t.db, { merchant });
    const code = await referralCodeOf(referrer.customerId);
    const refereeId = (await enroll(merchant, { phone: nextPhone(), referralCode: code })).json().customer.id;
    await postCommit(t.app, merchant, commitPayload(merchant, { customerId: refereeId, total: 1000 }));
    await createTestCampaign(t.db, merchant, {
      kind: 'referral',
      effect: { referrerPoints: 300, refereePoints: 200 },
    });
    await postCommit(t.app, merchant, commitPayload(merchant, { customerId: refereeId, total: 1000 }));
    expect(await eventsOf(merchant, 'bonus.granted')).toEqual([]);
  });
});
