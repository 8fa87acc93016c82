import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer, createTestMerchant } from '../../../test/helpers/factories.js';
import { adminRequest, commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { createStaffSession, loginStaff, portalRequest } from '../../../test/helpers/portal.js';
import { createPortalUser } from '../auth/auth.service.js';
import { DEFAULT_RULES } from '../programme/programme.schema.js';

// Merchants in the admin panel: create with an owner who can sign in to the portal, usage, suspend
// (the merchant's API keys stop working within seconds) and the platform's audit log.

const ADMIN_TOKEN = 'admin-test-operator-token-0123456789';
let t: TestApp;
let operatorToken: string;

beforeAll(async () => {
  // The listener drops cached API keys on NOTIFY, as in the server.
  t = await createTestApp({ env: { ADMIN_API_TOKEN: ADMIN_TOKEN }, listen: true });
  await createPortalUser(t.db, {
    merchantId: null,
    email: 'operator@platform.example',
    password: 'operator password',
    role: 'operator',
  });
  const login = await t.app.inject({
    method: 'POST',
    url: '/api/v1/admin/auth/login',
    payload: { email: 'operator@platform.example', password: 'operator password' },
  });
  operatorToken = login.json().accessToken;
});
afterAll(async () => {
  await t.close();
});

function admin(
  method: 'GET' | 'POST' | 'PATCH',
  url: string,
  payload?: object,
  token: string | null = ADMIN_TOKEN,
) {
  return adminRequest(t.app, { method, url: `/api/v1/admin${url}`, token, payload });
}

async function platformAudit() {
  const res = await admin('GET', '/audit-log?limit=200');
  expect(res.statusCode).toBe(200);
  return res.json().items as Array<{
    action: string;
    actor: string;
    entityId: string;
    before: unknown;
    after: unknown;
  }>;
}

describe('POST /merchants', () => {
  it('creates a merchant and its owner, who can sign in to the portal', async () => {
    const rules = { ...DEFAULT_RULES, earnRateBp: 700 };
    const res = await admin(
      'POST',
      '/merchants',
      {
        name: 'Пекарня',
        rules,
        owner: { email: 'owner@bakery.example', password: 'bakery password', name: 'Ирина' },
      },
      operatorToken,
    );
    expect(res.statusCode).toBe(201);
    const { merchant, owner } = res.json();
    expect(merchant).toMatchObject({ name: 'Пекарня', status: 'active', rules });
    expect(owner).toMatchObject({ email: 'owner@bakery.example', role: 'owner' });

    const session = await loginStaff(t.app, { email: 'owner@bakery.example', password: 'bakery password' });
    const programme = await portalRequest(t.app, session, { method: 'GET', url: '/programme' });
    expect(programme.json().rules.earnRateBp).toBe(700);

    const [entry] = await platformAudit();
    expect(entry).toMatchObject({
      action: 'merchant.create',
      actor: 'operator@platform.example',
      entityId: merchant.id,
      after: { name: 'Пекарня', owner: { email: 'owner@bakery.example' } },
    });
    expect(JSON.stringify(entry)).not.toContain('bakery password');
  });

  it('gives a new merchant its own owner even when the email works elsewhere, and validates naming the field', async () => {
    const count = async () => (await admin('GET', '/merchants?q=Дубль')).json().total;
    // Emails are unique per merchant: the same person may own a second business.
    const res = await admin('POST', '/merchants', {
      name: 'Дубль',
      owner: { email: 'OWNER@bakery.example', password: 'another password' },
    });
    expect(res.statusCode).toBe(201);
    expect(await count()).toBe(1);

    const bad = await admin('POST', '/merchants', {
      name: 'X',
      owner: { email: 'x@example.com', password: 'short' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/^owner\.password/);
    const badRules = await admin('POST', '/merchants', {
      name: 'X',
      rules: { ...DEFAULT_RULES, earnRateBp: -1 },
      owner: { email: 'x@example.com', password: 'long enough' },
    });
    expect(badRules.json().error.message).toMatch(/^rules\.earnRateBp/);
  });

  it('requires an operator', async () => {
    expect((await admin('GET', '/merchants', undefined, null)).statusCode).toBe(401);
    expect((await admin('GET', '/merchants', undefined, 'wrong')).statusCode).toBe(401);
    const merchant = await createTestMerchant(t.db);
    const staff = await createStaffSession(t.app, t.db, { merchantId: merchant.merchantId, role: 'owner' });
    expect((await admin('GET', '/merchants', undefined, staff.accessToken)).statusCode).toBe(403);
  });
});

describe('GET /merchants', () => {
  it('lists merchants with their usage, searchable by name or id', async () => {
    const merchant = await createTestMerchant(t.db, { name: 'Чайная «Листок»' });
    const customer = await createTestCustomer(t.db, { merchant });
    await commitPurchaseViaApi(t.app, merchant, { customerId: customer.customerId, total: 12_345 });
    const res = await admin('GET', '/merchants?q=листок');
    expect(res.json()).toEqual({
      items: [
        {
          id: merchant.merchantId,
          name: 'Чайная «Листок»',
          status: 'active',
          createdAt: expect.any(String),
          usage: { customers: 1, purchases30d: 1, revenue30d: 12_345, apiKeys: 1, webhookEndpoints: 0 },
        },
      ],
      total: 1,
    });
    const byId = await admin('GET', `/merchants?q=${merchant.merchantId}`);
    expect(byId.json().total).toBe(1);
    const page = await admin('GET', '/merchants?limit=1');
    expect(page.json().items).toHaveLength(1);
    expect(page.json().total).toBeGreaterThan(1);

    const detail = await admin('GET', `/merchants/${merchant.merchantId}`);
    expect(detail.json()).toMatchObject({ id: merchant.merchantId, rules: DEFAULT_RULES, users: [] });
    const missing = await admin('GET', '/merchants/00000000-0000-4000-8000-000000000000');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('merchant_not_found');
  });
});

describe('PATCH /merchants/:id', () => {
  it('suspends: the API key gets 403 merchant_suspended within seconds, the portal too; reactivates', async () => {
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    const staff = await createStaffSession(t.app, t.db, { merchantId: merchant.merchantId, role: 'owner' });
    const resolve = () =>
      t.app.inject({
        method: 'POST',
        url: '/api/v1/integration/customers/resolve',
        headers: { 'x-api-key': merchant.apiKey },
        payload: { customerId: customer.customerId },
      });
    // The key is now cached as valid.
    expect((await resolve()).statusCode).toBe(200);

    const suspended = await admin('PATCH', `/merchants/${merchant.merchantId}`, { status: 'suspended' });
    expect(suspended.statusCode).toBe(200);
    expect(suspended.json().status).toBe('suspended');
    await expect.poll(async () => (await resolve()).statusCode, { timeout: 5_000 }).toBe(403);
    expect((await resolve()).json().error.code).toBe('merchant_suspended');

    const portal = await portalRequest(t.app, staff, { method: 'GET', url: '/outlets' });
    expect(portal.statusCode).toBe(403);
    expect(portal.json().error.code).toBe('merchant_suspended');
    const refresh = await t.app.inject({
      method: 'POST',
      url: '/api/v1/portal/auth/refresh',
      payload: { refreshToken: staff.refreshToken },
    });
    expect(refresh.statusCode).toBe(401);

    const active = await admin('PATCH', `/merchants/${merchant.merchantId}`, {
      status: 'active',
      name: 'Снова открыты',
    });
    expect(active.json()).toMatchObject({ status: 'active', name: 'Снова открыты' });
    await expect.poll(async () => (await resolve()).statusCode, { timeout: 5_000 }).toBe(200);

    const actions = (await platformAudit())
      .filter((e) => e.entityId === merchant.merchantId)
      .map((e) => [e.action, e.actor]);
    expect(actions).toEqual([
      ['merchant.activate', 'admin-api-token'],
      ['merchant.suspend', 'admin-api-token'],
    ]);
    const empty = await admin('PATCH', `/merchants/${merchant.merchantId}`, {});
    expect(empty.statusCode).toBe(400);
  });
});

describe('audit of the existing operator actions', () => {
  it('records outbox pause/resume, replay, switches and operator webhook changes', async () => {
    const merchant = await createTestMerchant(t.db);
    await admin('POST', '/outbox/pause', { merchantId: merchant.merchantId }, operatorToken);
    await admin('POST', '/outbox/resume', { merchantId: merchant.merchantId }, operatorToken);
    await admin('POST', '/outbox/replay', {
      merchantId: merchant.merchantId,
      since: new Date(0).toISOString(),
    });
    const switches = await adminRequest(t.app, {
      method: 'PUT',
      url: '/api/v1/admin/switches',
      token: ADMIN_TOKEN,
      payload: { readOnly: true },
    });
    expect(switches.statusCode).toBe(200);
    await adminRequest(t.app, {
      method: 'PUT',
      url: '/api/v1/admin/switches',
      token: ADMIN_TOKEN,
      payload: { readOnly: false },
    });
    const hook = await admin('POST', `/merchants/${merchant.merchantId}/webhooks`, {
      url: 'https://example.com/ops',
    });
    expect(hook.statusCode).toBe(201);

    const entries = await platformAudit();
    const actions = entries.slice(0, 6).map((e) => e.action);
    expect(actions).toEqual([
      'webhook.create',
      'switches.update',
      'switches.update',
      'outbox.replay',
      'outbox.resume',
      'outbox.pause',
    ]);
    expect(entries[5]).toMatchObject({ actor: 'operator@platform.example', entityId: merchant.merchantId });
    expect(entries[2]).toMatchObject({
      before: { readOnly: { enabled: false } },
      after: { readOnly: { enabled: true } },
    });
    expect(JSON.stringify(entries[0])).not.toContain(hook.json().secret);

    // A merchant's own log is reachable too, and holds none of the platform's entries.
    const own = await admin('GET', `/audit-log?merchantId=${merchant.merchantId}`);
    expect(own.json().items).toEqual([]);
  });
});
