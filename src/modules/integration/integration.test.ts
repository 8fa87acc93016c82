import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { createOutlet, revokeApiKey, updateMerchantRules } from '../merchants/merchants.service.js';
import { DEFAULT_RULES } from '../programme/programme.schema.js';

let t: TestApp;
beforeAll(async () => {
  // The listener makes revocations take effect at once, as in the server.
  t = await createTestApp({ env: { CODE_RESOLVE_MAX_FAILURES: '3' }, listen: true });
});
afterAll(async () => {
  await t.close();
});

const base = '/api/v1/integration';

function post(m: TestMerchant | string, url: string, payload: unknown, headers: Record<string, string> = {}) {
  const apiKey = typeof m === 'string' ? m : m.apiKey;
  return t.app.inject({
    method: 'POST',
    url: `${base}${url}`,
    headers: { 'x-api-key': apiKey, ...headers },
    payload: payload as object,
  });
}

function commit(m: TestMerchant, body: Record<string, unknown>, key = randomUUID()) {
  return post(
    m,
    '/purchases',
    { orderId: randomUUID(), outletId: m.outletId, ...body },
    { 'idempotency-key': key },
  );
}

async function issueCode(token: string): Promise<string> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/client/code',
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.statusCode).toBe(200);
  return res.json().code;
}

function errorOf(res: LightMyRequestResponse) {
  return res.json().error as {
    code: string;
    message: string;
    details?: { issues?: Array<{ field: string }> };
  };
}

describe('a till serving a customer with a one-time code', () => {
  it('resolves, quotes, commits with the code, and the code is then used up', async () => {
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant, points: 300 });
    const code = await issueCode(customer.token);
    expect(code).toMatch(/^\d{6}$/);

    const resolved = await post(merchant, '/customers/resolve', { code, outletId: merchant.outletId });
    expect(resolved.statusCode).toBe(200);
    expect(resolved.json()).toEqual({
      customer: { id: customer.customerId, name: 'Test customer', phone: customer.phone },
      balance: { available: 300, pending: 0, held: 0 },
      tier: null,
    });

    const quoteBody = { customer: { code }, receipt: { total: 100_000 }, redeemPoints: 200 };
    const quote = await post(merchant, '/purchases/quote', quoteBody);
    expect(quote.statusCode).toBe(200);
    expect(quote.json()).toMatchObject({
      maxRedeemPoints: 300,
      redeemPoints: 200,
      discount: 20_000,
      payable: 80_000,
      earnPoints: 40,
    });

    const committed = await commit(merchant, { ...quoteBody, orderId: 'till-1' });
    expect(committed.statusCode).toBe(201);
    const body = committed.json();
    expect(body.purchase).toMatchObject({
      orderId: 'till-1',
      earnedPoints: 40,
      redeemedPoints: 200,
      status: 'committed',
    });
    expect(body.balance).toEqual({ available: 140, pending: 0, held: 0 });

    // The quote wrote nothing, the commit consumed the code.
    const again = await commit(merchant, quoteBody);
    expect(again.statusCode).toBe(404);
    expect(errorOf(again).code).toBe('code_not_found');
    const resolveAgain = await post(merchant, '/customers/resolve', { code });
    expect(errorOf(resolveAgain).code).toBe('code_not_found');

    const fetched = await t.app.inject({
      method: 'GET',
      url: `${base}/purchases/${body.purchase.id}`,
      headers: { authorization: `Bearer ${merchant.apiKey}` },
    });
    expect(fetched.statusCode).toBe(200);
    expect(fetched.json().purchase).toMatchObject({ id: body.purchase.id, orderId: 'till-1', refunds: [] });
  });

  it('replaces a customer’s previous code with a new one and rejects expired codes', async () => {
    const customer = await createTestCustomer(t.db);
    const first = await issueCode(customer.token);
    const second = await issueCode(customer.token);
    const m = customer.merchant;
    if (first !== second) {
      expect(errorOf(await post(m, '/customers/resolve', { code: first })).code).toBe('code_not_found');
    }
    expect((await post(m, '/customers/resolve', { code: second })).statusCode).toBe(200);
    await t.db
      .updateTable('customer_codes')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('code', '=', second)
      .execute();
    expect(errorOf(await post(m, '/customers/resolve', { code: second })).code).toBe('code_not_found');
  });

  it('rate-limits failed code lookups per API key, so codes cannot be guessed', async () => {
    const merchant = await createTestMerchant(t.db);
    const other = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    const code = await issueCode(customer.token);
    const wrong = code === '000000' ? '000001' : '000000';
    for (let i = 0; i < 3; i++) {
      expect((await post(merchant, '/customers/resolve', { code: wrong })).statusCode).toBe(404);
    }
    const blocked = await post(merchant, '/customers/resolve', { code });
    expect(blocked.statusCode).toBe(429);
    expect(errorOf(blocked).code).toBe('rate_limited');
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    // Lookups by phone and other keys are not affected.
    expect((await post(merchant, '/customers/resolve', { phone: customer.phone })).statusCode).toBe(200);
    expect((await post(other, '/customers/resolve', { code: wrong })).statusCode).toBe(404);
  });

  it('checks at most the limit of simultaneous wrong codes: each lookup is reserved first', async () => {
    const merchant = await createTestMerchant(t.db);
    const answers = await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        post(merchant, '/customers/resolve', { code: String(100_000 + i) }),
      ),
    );
    const checked = answers.filter((res) => res.statusCode === 404).length;
    expect(answers.filter((res) => res.statusCode === 429).length).toBe(15 - checked);
    expect(checked).toBeLessThanOrEqual(3);
    expect(checked).toBeGreaterThan(0);
  });

  it('answers every one of many simultaneous lookups of valid codes: lookups in flight take nothing from the limit', async () => {
    const merchant = await createTestMerchant(t.db);
    const customers = await Promise.all(
      Array.from({ length: 12 }, () => createTestCustomer(t.db, { merchant })),
    );
    const codes = await Promise.all(customers.map((c) => issueCode(c.token)));
    const answers = await Promise.all(codes.map((code) => post(merchant, '/customers/resolve', { code })));
    expect(answers.map((res) => res.statusCode)).toEqual(codes.map(() => 200));
    expect(answers.map((res) => res.json().customer.id)).toEqual(customers.map((c) => c.customerId));
  });

  it('shows no hit sent among a burst of guesses once the misses counted reach the limit', async () => {
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    const code = await issueCode(customer.token);
    const guesses = Array.from({ length: 15 }, (_, i) => String(100_000 + i)).filter((g) => g !== code);
    const answers = await Promise.all(
      [...guesses, code].map((c) => post(merchant, '/customers/resolve', { code: c })),
    );
    const statuses = answers.map((res) => res.statusCode);
    // At most the limit of misses is answered as such; the rest are refused, whatever they were.
    expect(statuses.filter((s) => s === 404).length).toBeLessThanOrEqual(3);
    expect(statuses.every((s) => s === 404 || s === 429 || s === 200)).toBe(true);
    // The hit is shown only if fewer misses than the limit had been counted when it was judged.
    if (statuses.at(-1) === 200) expect(statuses.filter((s) => s === 404).length).toBeLessThanOrEqual(3);
    // Once over the limit the hit is refused too, and no lookup is answered until the window ends.
    const after = await post(merchant, '/customers/resolve', { code });
    expect(after.statusCode).toBe(429);
  });
});

describe('programme rules in quote and commit', () => {
  it('caps redemption at the receipt share and the balance, and reports tiers', async () => {
    const merchant = await createTestMerchant(t.db, {
      rules: {
        tiers: [
          { name: 'Silver', minSpend: 0, earnRateBp: 300 },
          { name: 'Gold', minSpend: 150_000, earnRateBp: 1000 },
        ],
        excludedCategories: ['tobacco'],
      },
    });
    const customer = await createTestCustomer(t.db, { merchant, points: 10_000 });
    const receipt = {
      total: 100_000,
      items: [
        { name: 'Coffee', amount: 60_000 },
        { name: 'Cigarettes', category: 'tobacco', amount: 30_000 },
        { name: 'Gift card', amount: 10_000, excluded: true },
      ],
    };
    const quote = await post(merchant, '/purchases/quote', {
      customer: { customerId: customer.customerId },
      receipt,
    });
    expect(quote.statusCode).toBe(200);
    // Eligible 60 000; cap 50% -> 30 000 minor -> 300 points; base tier Silver 3%.
    expect(quote.json()).toMatchObject({
      eligibleAmount: 60_000,
      maxRedeemPoints: 300,
      earnPoints: 18,
      tier: { name: 'Silver' },
    });

    const over = await post(merchant, '/purchases/quote', {
      customer: { customerId: customer.customerId },
      receipt,
      redeemPoints: 301,
    });
    expect(over.statusCode).toBe(422);
    expect(errorOf(over).code).toBe('redeem_limit_exceeded');

    expect(
      (await commit(merchant, { customer: { customerId: customer.customerId }, receipt: { total: 200_000 } }))
        .statusCode,
    ).toBe(201);
    const gold = await post(merchant, '/customers/resolve', { customerId: customer.customerId });
    expect(gold.json().tier).toMatchObject({ name: 'Gold', earnRateBp: 1000 });
  });

  it('applies changed rules to the next request at once', async () => {
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    const body = { customer: { customerId: customer.customerId }, receipt: { total: 100_000 } };
    expect((await post(merchant, '/purchases/quote', body)).json().earnPoints).toBe(50);
    await updateMerchantRules(t.db, {
      merchantId: merchant.merchantId,
      rules: { ...DEFAULT_RULES, earnRateBp: 1000 },
    });
    await expect
      .poll(async () => (await post(merchant, '/purchases/quote', body)).json().earnPoints)
      .toBe(100);
  });

  it('rejects a redemption above the balance with insufficient_points', async () => {
    const customer = await createTestCustomer(t.db, { points: 10 });
    const res = await commit(customer.merchant, {
      customer: { phone: customer.phone },
      receipt: { total: 100_000 },
      redeemPoints: 11,
    });
    expect(res.statusCode).toBe(422);
    expect(errorOf(res)).toMatchObject({
      code: 'insufficient_points',
      details: { available: 10, requested: 11 },
    });
  });
});

describe('POS context, auth and tenancy', () => {
  it('requires an outlet, device or manager on mutations, each of the key’s merchant', async () => {
    const merchant = await createTestMerchant(t.db);
    const other = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    const body = {
      customer: { customerId: customer.customerId },
      receipt: { total: 1000 },
      orderId: randomUUID(),
    };
    const missing = await post(merchant, '/purchases', body, { 'idempotency-key': randomUUID() });
    expect(missing.statusCode).toBe(400);
    expect(errorOf(missing).details?.issues?.[0]?.field).toBe('outletId');

    for (const [field, id, code] of [
      ['outletId', other.outletId, 'outlet_not_found'],
      ['deviceId', other.deviceId, 'device_not_found'],
      ['managerId', other.managerId, 'manager_not_found'],
    ] as const) {
      const res = await post(
        merchant,
        '/purchases',
        { ...body, [field]: id },
        { 'idempotency-key': randomUUID() },
      );
      expect(res.statusCode).toBe(404);
      expect(errorOf(res).code).toBe(code);
    }

    const secondOutlet = await createOutlet(t.db, { merchantId: merchant.merchantId, name: 'Second' });
    const mismatch = await post(
      merchant,
      '/purchases',
      { ...body, outletId: secondOutlet.id, deviceId: merchant.deviceId },
      { 'idempotency-key': randomUUID() },
    );
    expect(mismatch.statusCode).toBe(422);
    expect(errorOf(mismatch).code).toBe('context_mismatch');

    for (const context of [{ deviceId: merchant.deviceId }, { managerId: merchant.managerId }]) {
      const res = await post(
        merchant,
        '/purchases',
        { ...body, orderId: randomUUID(), ...context },
        { 'idempotency-key': randomUUID() },
      );
      expect(res.statusCode).toBe(201);
    }
  });

  it('answers 401 without a key, with a wrong key and right after a key is revoked', async () => {
    const merchant = await createTestMerchant(t.db);
    const noKey = await t.app.inject({
      method: 'POST',
      url: `${base}/customers/resolve`,
      payload: { phone: '+79990000000' },
    });
    expect(noKey.statusCode).toBe(401);
    expect(errorOf(noKey).code).toBe('unauthorized');
    expect((await post('lk_live_wrong', '/customers/resolve', { phone: '+79990000000' })).statusCode).toBe(
      401,
    );

    expect((await post(merchant, '/customers/resolve', { phone: '+79990000000' })).statusCode).toBe(404);
    await revokeApiKey(t.db, { merchantId: merchant.merchantId, keyId: merchant.apiKeyId });
    await expect
      .poll(async () => (await post(merchant, '/customers/resolve', { phone: '+79990000000' })).statusCode)
      .toBe(401);
  });

  it('never shows one merchant’s customers to another merchant’s key', async () => {
    const a = await createTestCustomer(t.db, { points: 100 });
    const b = await createTestMerchant(t.db);
    const code = await issueCode(a.token);
    for (const ref of [{ customerId: a.customerId }, { phone: a.phone }, { code }]) {
      const res = await post(b, '/customers/resolve', ref);
      expect(res.statusCode).toBe(404);
      const quote = await post(b, '/purchases/quote', { customer: ref, receipt: { total: 1000 } });
      expect(quote.statusCode).toBe(404);
    }
    // The same phone at merchant B is a different customer.
    const twin = await createTestCustomer(t.db, { merchant: b, phone: a.phone });
    const res = await post(b, '/customers/resolve', { phone: a.phone });
    expect(res.json().customer.id).toBe(twin.customerId);
    expect(res.json().balance.available).toBe(0);
  });
});

describe('bad input', () => {
  it('names the field for wrong types, negative and huge numbers, unknown fields', async () => {
    const merchant = await createTestMerchant(t.db);
    const cases: Array<[unknown, string]> = [
      [{ customer: { phone: '+79990000000' }, receipt: { total: -1 } }, 'receipt.total'],
      [{ customer: { phone: '+79990000000' }, receipt: { total: '100' } }, 'receipt.total'],
      [{ customer: { phone: '+79990000000' }, receipt: { total: 1e20 } }, 'receipt.total'],
      [{ customer: { phone: '+79990000000' }, receipt: { total: 10.5 } }, 'receipt.total'],
      [{ customer: { phone: '+79990000000' }, receipt: { total: 100 }, bonus: 1 }, 'bonus'],
      [{ customer: { phone: 'call me' }, receipt: { total: 100 } }, 'customer.phone'],
      [{ customer: { code: '12' }, receipt: { total: 100 } }, 'customer.code'],
      [{ customer: {}, receipt: { total: 100 } }, 'customer.code'],
      [
        { customer: { phone: '+79990000000' }, receipt: { total: 100, items: [{ amount: 50 }] } },
        'receipt.items',
      ],
      [{ customer: { phone: '+79990000000' }, receipt: { total: 100 }, redeemPoints: -5 }, 'redeemPoints'],
    ];
    for (const [payload, field] of cases) {
      const res = await post(merchant, '/purchases/quote', payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      const error = errorOf(res);
      expect(error.code).toBe('validation_error');
      expect(error.details?.issues?.map((i) => i.field)).toContain(field);
      expect(error.message).toContain(field);
    }
  });

  it('requires an Idempotency-Key on mutations', async () => {
    const merchant = await createTestMerchant(t.db);
    const res = await post(merchant, '/purchases', {
      customer: { phone: '+79990000000' },
      receipt: { total: 100 },
      orderId: 'x',
      outletId: merchant.outletId,
    });
    expect(res.statusCode).toBe(400);
    expect(errorOf(res).message).toContain('idempotency-key');
  });

  it('answers malformed JSON, a wrong content type and a 1 MB body with 4xx', async () => {
    const merchant = await createTestMerchant(t.db);
    const send = (payload: string, contentType: string) =>
      t.app.inject({
        method: 'POST',
        url: `${base}/purchases/quote`,
        headers: { 'x-api-key': merchant.apiKey, 'content-type': contentType },
        payload,
      });
    expect(errorOf(await send('{"customer":', 'application/json')).code).toBe('invalid_json');
    expect((await send('a=1', 'application/x-www-form-urlencoded')).statusCode).toBe(415);
    const huge = await send(JSON.stringify({ pad: 'x'.repeat(1_000_000) }), 'application/json');
    expect(huge.statusCode).toBe(413);
    expect(errorOf(huge).code).toBe('payload_too_large');
  });
});

describe('client API', () => {
  it('shows the customer their profile and history, and nothing without a token', async () => {
    const customer = await createTestCustomer(t.db, { points: 50 });
    const auth = { authorization: `Bearer ${customer.token}` };
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/client/me', headers: auth });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({
      customer: { id: customer.customerId },
      balance: { available: 50, pending: 0, held: 0 },
    });
    const history = await t.app.inject({ method: 'GET', url: '/api/v1/client/transactions', headers: auth });
    expect(history.json().items).toMatchObject([{ kind: 'adjust', points: 50, reason: 'test' }]);
    for (const headers of [{}, { authorization: 'Bearer lu_nope' }]) {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/client/code', headers });
      expect(res.statusCode).toBe(401);
    }
  });
});
