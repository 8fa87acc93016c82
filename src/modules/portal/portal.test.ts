import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import {
  createMerchantTeam,
  createStaffSession,
  type MerchantTeam,
  portalRequest,
  type StaffSession,
} from '../../../test/helpers/portal.js';
import { createPortalUser } from '../auth/auth.service.js';
import type { StaffRole } from '../auth/permissions.js';
import { DEFAULT_RULES } from '../programme/programme.schema.js';

// Who may do what in the portal (server-side, for every role), and tenancy: another merchant's ids
// are 404s, never someone else's data.

let t: TestApp;
let a: MerchantTeam;
let b: MerchantTeam;
let customerA: string;
let customerB: string;

beforeAll(async () => {
  t = await createTestApp();
  [a, b] = await Promise.all([
    createMerchantTeam(t.app, t.db, { name: 'Кофейня А' }),
    createMerchantTeam(t.app, t.db, { name: 'Кофейня Б' }),
  ]);
  customerA = (await createTestCustomer(t.db, { merchant: a.merchant, points: 100 })).customerId;
  customerB = (await createTestCustomer(t.db, { merchant: b.merchant, points: 100 })).customerId;
});
afterAll(async () => {
  await t.close();
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

function call(session: StaffSession | null, method: Method, url: string, payload?: unknown) {
  return portalRequest(t.app, session, { method, url, payload });
}

function errorCode(res: LightMyRequestResponse): string | undefined {
  return res.json().error?.code;
}

const ROLES: StaffRole[] = ['owner', 'admin', 'manager', 'cashier'];
let emailCounter = 0;

/** Representative routes and the roles allowed to use them. */
const MATRIX: Array<{ name: string; allowed: StaffRole[]; request: () => [Method, string, unknown?] }> = [
  { name: 'GET /dashboard', allowed: ['owner', 'admin', 'manager'], request: () => ['GET', '/dashboard'] },
  {
    name: 'PUT /programme',
    allowed: ['owner', 'admin'],
    request: () => ['PUT', '/programme', { rules: DEFAULT_RULES }],
  },
  {
    name: 'POST /api-keys',
    allowed: ['owner', 'admin'],
    request: () => ['POST', '/api-keys', { name: 'Till' }],
  },
  { name: 'GET /api-keys', allowed: ['owner', 'admin'], request: () => ['GET', '/api-keys'] },
  {
    name: 'POST /webhooks',
    allowed: ['owner', 'admin'],
    request: () => ['POST', '/webhooks', { url: 'https://example.com/loyalty-hooks' }],
  },
  {
    name: 'POST /users',
    allowed: ['owner', 'admin'],
    request: () => {
      emailCounter += 1;
      return [
        'POST',
        '/users',
        { email: `new${emailCounter}@example.com`, password: 'long enough pw', role: 'cashier' },
      ];
    },
  },
  {
    name: 'POST /customers/:id/adjustments',
    allowed: ['owner', 'admin', 'manager'],
    request: () => ['POST', `/customers/${customerA}/adjustments`, { points: 1, reason: 'Бонус' }],
  },
  {
    name: 'PATCH /customers/:id',
    allowed: ['owner', 'admin', 'manager'],
    request: () => ['PATCH', `/customers/${customerA}`, { birthDate: '1990-03-12' }],
  },
  {
    name: 'GET /transactions.csv',
    allowed: ['owner', 'admin', 'manager'],
    request: () => ['GET', '/transactions.csv'],
  },
  {
    name: 'GET /transactions',
    allowed: ['owner', 'admin', 'manager', 'cashier'],
    request: () => ['GET', '/transactions'],
  },
  {
    name: 'GET /customers',
    allowed: ['owner', 'admin', 'manager', 'cashier'],
    request: () => ['GET', '/customers'],
  },
  {
    name: 'POST /outlets',
    allowed: ['owner', 'admin'],
    request: () => ['POST', '/outlets', { name: 'Новая точка' }],
  },
  {
    name: 'GET /outlets',
    allowed: ['owner', 'admin', 'manager', 'cashier'],
    request: () => ['GET', '/outlets'],
  },
  { name: 'GET /telegram', allowed: ['owner', 'admin'], request: () => ['GET', '/telegram'] },
  { name: 'GET /users', allowed: ['owner', 'admin'], request: () => ['GET', '/users'] },
  { name: 'GET /audit-log', allowed: ['owner', 'admin'], request: () => ['GET', '/audit-log'] },
  {
    name: 'POST /programme/preview',
    allowed: ['owner', 'admin', 'manager'],
    request: () => ['POST', '/programme/preview', { receipt: { total: 1000 } }],
  },
];

describe('role permissions', () => {
  for (const route of MATRIX) {
    it(`${route.name}: allowed for ${route.allowed.join(', ')}; 403 forbidden for the rest`, async () => {
      for (const role of ROLES) {
        const [method, url, payload] = route.request();
        const res = await call(a[role], method, url, payload);
        if (route.allowed.includes(role)) {
          expect(res.statusCode, `${role} ${res.body}`).toBeLessThan(300);
        } else {
          expect(res.statusCode, `${role} ${res.body}`).toBe(403);
          expect(errorCode(res)).toBe('forbidden');
        }
      }
    });
  }

  it('refuses a forbidden role before looking at the body (403, not 400)', async () => {
    const res = await call(a.cashier, 'PUT', '/programme', { rules: { earnRateBp: 'lots' } });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.details).toEqual({ permission: 'programme:write' });
  });

  it('answers 401 without a token, with a forged token, and for a disabled account', async () => {
    expect((await call(null, 'GET', '/outlets')).statusCode).toBe(401);
    expect((await call({ ...a.owner, accessToken: 'not.a.jwt' }, 'GET', '/outlets')).statusCode).toBe(401);
    const temp = await createStaffSession(t.app, t.db, {
      merchantId: a.merchant.merchantId,
      role: 'manager',
    });
    expect((await call(temp, 'GET', '/outlets')).statusCode).toBe(200);
    const off = await call(a.owner, 'PATCH', `/users/${temp.userId}`, { disabled: true });
    expect(off.statusCode).toBe(200);
    const after = await call(temp, 'GET', '/outlets');
    expect(after.statusCode).toBe(401);
  });

  it('applies a role change at once, not when the access token expires', async () => {
    const staff = await createStaffSession(t.app, t.db, { merchantId: a.merchant.merchantId, role: 'admin' });
    expect((await call(staff, 'GET', '/api-keys')).statusCode).toBe(200);
    const demote = await call(a.owner, 'PATCH', `/users/${staff.userId}`, { role: 'cashier' });
    expect(demote.statusCode).toBe(200);
    expect(demote.json().role).toBe('cashier');
    const res = await call(staff, 'GET', '/api-keys');
    expect(res.statusCode).toBe(403);
    expect(res.json().error.message).toContain('cashier');
  });

  it('keeps operators out of the portal', async () => {
    await createPortalUser(t.db, {
      merchantId: null,
      email: 'ops@example.com',
      password: 'operator password',
      role: 'operator',
    });
    const login = await t.app.inject({
      method: 'POST',
      url: '/api/v1/admin/auth/login',
      payload: { email: 'ops@example.com', password: 'operator password' },
    });
    expect(login.statusCode).toBe(200);
    const res = await call({ ...a.owner, accessToken: login.json().accessToken }, 'GET', '/outlets');
    expect(res.statusCode).toBe(403);
  });
});

describe('tenancy: another merchant’s ids are 404', () => {
  it('customers: profile, ledger and adjustments', async () => {
    for (const [method, url, payload] of [
      ['GET', `/customers/${customerB}`],
      ['GET', `/customers/${customerB}/ledger`],
      ['POST', `/customers/${customerB}/adjustments`, { points: 5, reason: 'чужой' }],
    ] as Array<[Method, string, unknown?]>) {
      const res = await call(a.owner, method, url, payload);
      expect(res.statusCode, url).toBe(404);
      expect(errorCode(res)).toBe('customer_not_found');
    }
    const own = await call(b.owner, 'GET', `/customers/${customerB}`);
    expect(own.json().balance).toEqual({ available: 100, pending: 0, held: 0 });
    const list = await call(a.owner, 'GET', '/customers');
    expect(list.json().items.map((c: { id: string }) => c.id)).not.toContain(customerB);
  });

  it('outlets, devices and cashiers', async () => {
    const outlet = await call(a.owner, 'PATCH', `/outlets/${b.merchant.outletId}`, { name: 'x' });
    expect(outlet.statusCode).toBe(404);
    expect((await call(a.owner, 'DELETE', `/outlets/${b.merchant.outletId}`)).statusCode).toBe(404);
    expect((await call(a.owner, 'PATCH', `/devices/${b.merchant.deviceId}`, { name: 'x' })).statusCode).toBe(
      404,
    );
    expect((await call(a.owner, 'DELETE', `/cashiers/${b.merchant.managerId}`)).statusCode).toBe(404);
    // Attaching one's device to another merchant's outlet is refused the same way.
    const move = await call(a.owner, 'PATCH', `/devices/${a.merchant.deviceId}`, {
      outletId: b.merchant.outletId,
    });
    expect(move.statusCode).toBe(404);
    expect(errorCode(move)).toBe('outlet_not_found');
  });

  it('webhooks, API keys and users', async () => {
    const created = await call(b.owner, 'POST', '/webhooks', { url: 'https://example.com/b' });
    expect(created.statusCode).toBe(201);
    const endpointId = created.json().id;
    for (const [method, url, payload] of [
      ['PATCH', `/webhooks/${endpointId}`, { enabled: false }],
      ['DELETE', `/webhooks/${endpointId}`],
      ['POST', `/webhooks/${endpointId}/rotate-secret`],
      ['POST', `/webhooks/${endpointId}/test`],
      ['GET', `/webhooks/${endpointId}/deliveries`],
      ['POST', `/webhooks/${endpointId}/replay`, { since: new Date(0).toISOString() }],
      ['DELETE', `/api-keys/${b.merchant.apiKeyId}`],
      ['PATCH', `/users/${b.cashier.userId}`, { name: 'x' }],
      ['DELETE', `/users/${b.cashier.userId}`],
      ['DELETE', '/telegram/staff-chats/00000000-0000-4000-8000-000000000000'],
    ] as Array<[Method, string, unknown?]>) {
      const res = await call(a.owner, method, url, payload);
      expect(res.statusCode, `${method} ${url}`).toBe(404);
    }
    // Nothing of B's changed.
    const hooks = await call(b.owner, 'GET', '/webhooks');
    expect(hooks.json().items[0]).toMatchObject({ id: endpointId, enabled: true });
    const keys = await call(b.owner, 'GET', '/api-keys');
    expect(keys.json()[0].revokedAt).toBeNull();
  });

  it('lists and logs only the merchant’s own records', async () => {
    const users = await call(a.owner, 'GET', '/users');
    const emails = users.json().items.map((u: { email: string }) => u.email);
    expect(emails).toContain(a.cashier.email);
    expect(emails).not.toContain(b.cashier.email);
    const audit = await call(b.owner, 'GET', '/audit-log');
    for (const entry of audit.json().items) expect(entry.actor).not.toBe(a.owner.email);
  });

  it('answers 400 naming the field for a malformed id', async () => {
    const res = await call(a.owner, 'GET', '/customers/not-a-uuid');
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/^params\.id/);
  });
});
