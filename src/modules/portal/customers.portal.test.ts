import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';
import { updateMerchantRules } from '../merchants/merchants.service.js';
import { DEFAULT_RULES } from '../programme/programme.schema.js';

// Customers in the portal: search by phone or name, profile with tier progress, manual adjustments.

let t: TestApp;
let team: MerchantTeam;
let anna: string;

beforeAll(async () => {
  t = await createTestApp();
  team = await createMerchantTeam(t.app, t.db);
  const { merchant } = team;
  anna = (await createTestCustomer(t.db, { merchant, phone: '+79161234567', name: 'Анна Петрова' }))
    .customerId;
  await createTestCustomer(t.db, { merchant, phone: '+79035550011', name: 'Иван' });
  await createTestCustomer(t.db, { merchant, phone: '+79035550012', name: '100%_кофе' });
});
afterAll(async () => {
  await t.close();
});

function get(url: string) {
  return portalRequest(t.app, team.cashier, { method: 'GET', url });
}

async function names(q: string): Promise<string[]> {
  const res = await get(`/customers?q=${encodeURIComponent(q)}`);
  expect(res.statusCode).toBe(200);
  return res.json().items.map((c: { name: string }) => c.name);
}

describe('GET /customers', () => {
  it('finds customers by phone digits in any format and by name, case-insensitively', async () => {
    expect(await names('916 999')).toEqual([]);
    expect(await names('916 123')).toEqual(['Анна Петрова']);
    expect(await names('9161234')).toEqual(['Анна Петрова']);
    expect(await names('8 (916) 123-45-67')).toEqual(['Анна Петрова']);
    expect(await names('+7 916 123 45 67')).toEqual(['Анна Петрова']);
    expect(await names('анна')).toEqual(['Анна Петрова']);
    expect(await names('ПЕТРОВ')).toEqual(['Анна Петрова']);
    expect((await names('903555')).sort()).toEqual(['100%_кофе', 'Иван']);
    // Wildcards in the query match literally.
    expect(await names('%_')).toEqual(['100%_кофе']);
  });

  it('pages with limit and offset and reports the total', async () => {
    const page = await get('/customers?limit=2&offset=0');
    expect(page.json().total).toBe(3);
    expect(page.json().items).toHaveLength(2);
    const rest = await get('/customers?limit=2&offset=2');
    expect(rest.json().items).toHaveLength(1);
    expect(rest.json().items[0]).toMatchObject({ available: 0, pending: 0, lastPurchaseAt: null });
    const bad = await get('/customers?limit=1000');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/^querystring\.limit/);
  });
});

describe('GET /customers/:id', () => {
  it('shows balance and tier progress toward the next tier', async () => {
    const plain = await get(`/customers/${anna}`);
    expect(plain.json()).toMatchObject({
      customer: { id: anna, name: 'Анна Петрова', phone: '+79161234567', hasTelegram: false },
      balance: { available: 0, pending: 0, held: 0 },
      tier: null,
    });

    await updateMerchantRules(t.db, {
      merchantId: team.merchant.merchantId,
      rules: {
        ...DEFAULT_RULES,
        tiers: [
          { name: 'Silver', minSpend: 10_000, earnRateBp: 700 },
          { name: 'Gold', minSpend: 100_000, earnRateBp: 1000 },
        ],
      },
    });
    const below = await get(`/customers/${anna}`);
    expect(below.json().tier).toEqual({
      name: null,
      earnRateBp: 500,
      spend: 0,
      next: { name: 'Silver', minSpend: 10_000 },
    });
    await commitPurchaseViaApi(t.app, team.merchant, { customerId: anna, total: 20_000 });
    const silver = await get(`/customers/${anna}`);
    expect(silver.json().tier).toEqual({
      name: 'Silver',
      earnRateBp: 700,
      spend: 20_000,
      next: { name: 'Gold', minSpend: 100_000 },
    });
    // The purchase itself earned at the base rate: tiers apply to spend before the receipt.
    expect(silver.json().balance).toEqual({ available: 10, pending: 0, held: 0 });
    expect(silver.json().customer.lastPurchaseAt).not.toBeNull();
  });
});

describe('POST /customers/:id/adjustments', () => {
  it('adds and takes points with a reason, audited with the balance before and after', async () => {
    const customer = await createTestCustomer(t.db, { merchant: team.merchant, points: 100 });
    const url = `/customers/${customer.customerId}/adjustments`;
    const add = await portalRequest(t.app, team.manager, {
      method: 'POST',
      url,
      payload: { points: 50, reason: 'Компенсация за ожидание' },
    });
    expect(add.statusCode).toBe(200);
    expect(add.json()).toEqual({ balance: { available: 150, pending: 0, held: 0 } });
    const take = await portalRequest(t.app, team.manager, {
      method: 'POST',
      url,
      payload: { points: -30, reason: 'Ошибка кассира' },
    });
    expect(take.json().balance.available).toBe(120);

    const ledger = await get(`/customers/${customer.customerId}/ledger?limit=2`);
    expect(ledger.json().items.map((e: { points: number; reason: string }) => [e.points, e.reason])).toEqual([
      [-30, 'Ошибка кассира'],
      [50, 'Компенсация за ожидание'],
    ]);
    const older = await get(`/customers/${customer.customerId}/ledger?before=${ledger.json().items[1].id}`);
    expect(older.json().items).toHaveLength(1);

    const audit = await portalRequest(t.app, team.owner, { method: 'GET', url: '/audit-log' });
    const entries = audit
      .json()
      .items.filter((e: { entityId: string }) => e.entityId === customer.customerId);
    expect(entries[0]).toMatchObject({
      action: 'customer.adjust_points',
      actor: team.manager.email,
      actorUserId: team.manager.userId,
      before: { balance: { available: 150, pending: 0, held: 0 } },
      after: { balance: { available: 120, pending: 0, held: 0 }, points: -30, reason: 'Ошибка кассира' },
    });
  });

  it('never goes below zero (422) and validates points and reason', async () => {
    const customer = await createTestCustomer(t.db, { merchant: team.merchant, points: 10 });
    const url = `/customers/${customer.customerId}/adjustments`;
    const post = (payload: object) => portalRequest(t.app, team.owner, { method: 'POST', url, payload });
    const tooMuch = await post({ points: -11, reason: 'списание' });
    expect(tooMuch.statusCode).toBe(422);
    expect(tooMuch.json().error).toMatchObject({ code: 'insufficient_points', details: { available: 10 } });
    const zero = await post({ points: 0, reason: 'ноль' });
    expect(zero.statusCode).toBe(400);
    expect(zero.json().error.message).toMatch(/^points/);
    const fraction = await post({ points: 1.5, reason: 'дробь' });
    expect(fraction.json().error.message).toMatch(/^points/);
    const noReason = await post({ points: 5, reason: '' });
    expect(noReason.json().error.message).toMatch(/^reason/);
    const longReason = await post({ points: 5, reason: 'x'.repeat(201) });
    expect(longReason.json().error.message).toMatch(/^reason/);
    const balance = await get(`/customers/${customer.customerId}`);
    expect(balance.json().balance.available).toBe(10);
  });
});

describe('PATCH /customers/:id', () => {
  it("sets, corrects and clears the date of birth, audited; the customer's own date is corrected here", async () => {
    const customer = await createTestCustomer(t.db, { merchant: team.merchant });
    const url = `/customers/${customer.customerId}`;
    const patch = (payload: object, user = team.manager) =>
      portalRequest(t.app, user, { method: 'PATCH', url, payload });
    // The customer gave a wrong date in the Mini App, and cannot give another one.
    const own = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/client/me',
      headers: { authorization: `Bearer ${customer.token}` },
      payload: { birthDate: '1990-12-03' },
    });
    expect(own.statusCode).toBe(200);

    const corrected = await patch({ birthDate: '1990-03-12' });
    expect(corrected.statusCode, corrected.body).toBe(200);
    expect(corrected.json().customer.birthDate).toBe('1990-03-12');
    expect((await get(url)).json().customer.birthDate).toBe('1990-03-12');
    const cleared = await patch({ birthDate: null });
    expect(cleared.json().customer.birthDate).toBeNull();

    const audit = await portalRequest(t.app, team.owner, { method: 'GET', url: '/audit-log' });
    const entries = audit
      .json()
      .items.filter((e: { entityId: string; action: string }) => e.entityId === customer.customerId);
    expect(entries.slice(0, 2)).toMatchObject([
      { action: 'customer.update', before: { birthDate: '1990-03-12' }, after: { birthDate: null } },
      {
        action: 'customer.update',
        actor: team.manager.email,
        before: { birthDate: '1990-12-03' },
        after: { birthDate: '1990-03-12' },
      },
    ]);
  });

  it("refuses a bad date naming birthDate, and another merchant's customer is a 404", async () => {
    const customer = await createTestCustomer(t.db, { merchant: team.merchant });
    const url = `/customers/${customer.customerId}`;
    for (const payload of [{ birthDate: '2100-01-01' }, { birthDate: '1990-13-01' }, {}, { name: 'x' }]) {
      const res = await portalRequest(t.app, team.owner, { method: 'PATCH', url, payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error.message).toMatch(/birthDate|name/);
    }
    const other = await createTestCustomer(t.db, {});
    const foreign = await portalRequest(t.app, team.owner, {
      method: 'PATCH',
      url: `/customers/${other.customerId}`,
      payload: { birthDate: '1990-03-12' },
    });
    expect(foreign.statusCode).toBe(404);
  });
});
