import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestCustomer } from './helpers/factories.js';
import { documentedOperations, fillPath } from './helpers/openapi.js';

// Generated from the OpenAPI document: every signed-in route of the portal and the admin API
// answers a stranger 401 before it looks at the path, query or body, so nothing about our
// validation leaks. A new route is covered by being documented.

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ env: { ADMIN_API_TOKEN: 'x'.repeat(40) } });
});
afterAll(async () => t?.close());

describe('authentication comes before validation', () => {
  it('answers 401 without a token on every portal and admin route, whatever the input', async () => {
    const operations = documentedOperations(t.app).filter(
      (op) => /^\/api\/v1\/(portal|admin)\//.test(op.path) && op.security?.length,
    );
    expect(operations.length).toBeGreaterThan(40);
    for (const op of operations) {
      const res = await t.app.inject({
        method: op.method,
        url: `${fillPath(op.path, () => 'not-an-id')}?limit=-1&bogus=1`,
        ...(op.method === 'GET' || op.method === 'DELETE' ? {} : { payload: { bogus: true } }),
      });
      expect(res.statusCode, `${op.method} ${op.path}: ${res.body}`).toBe(401);
      expect(res.json().error.code, `${op.method} ${op.path}`).toBe('unauthorized');
      expect(res.body, `${op.method} ${op.path}`).not.toMatch(/bogus|limit|validation/);
    }
  });
});

describe('POS enrollment needs an API key', () => {
  it('answers 401 without X-Api-Key or with a wrong one, and enrolls nobody', async () => {
    const operations = documentedOperations(t.app).map((op) => `${op.method} ${op.path}`);
    expect(operations).toContain('POST /api/v1/integration/customers');
    for (const headers of [{}, { 'x-api-key': 'lk_not-a-key' }]) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/integration/customers',
        headers: { ...headers, 'idempotency-key': 'k-1' },
        payload: { phone: '+79990002233' },
      });
      expect(res.statusCode, res.body).toBe(401);
      expect(res.json().error.code).toBe('unauthorized');
    }
    const customers = await t.db
      .selectFrom('customers')
      .select('id')
      .where('phone', '=', '+79990002233')
      .execute();
    expect(customers).toEqual([]);
  });
});

describe('the POS API', () => {
  it('answers 401 to the hold routes without an API key or with a wrong one, and changes nothing', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 100 });
    const hold = {
      customer: { customerId },
      receipt: { total: 10_000 },
      redeemPoints: 10,
      outletId: merchant.outletId,
    };
    const calls = [
      { url: '/api/v1/integration/holds', payload: hold },
      { url: `/api/v1/integration/holds/${randomUUID()}/cancel`, payload: { outletId: merchant.outletId } },
    ];
    for (const { url, payload } of calls) {
      for (const headers of [{}, { 'x-api-key': `lk_live_${'0'.repeat(40)}` }]) {
        const res = await t.app.inject({
          method: 'POST',
          url,
          headers: { ...headers, 'idempotency-key': randomUUID() },
          payload,
        });
        expect(res.statusCode, `${url}: ${res.body}`).toBe(401);
        expect(res.json().error.code).toBe('unauthorized');
      }
    }
    const { count } = await t.db
      .selectFrom('holds')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .executeTakeFirstOrThrow();
    expect(Number(count)).toBe(0);
  });
});
