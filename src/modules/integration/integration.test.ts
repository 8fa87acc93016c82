import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer, createTestMerchant } from '../../../test/helpers/factories.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

describe('integration API', () => {
  it('resolves a customer by phone', async () => {
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant, points: 100 });
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers: { 'x-api-key': merchant.apiKey },
      payload: { phone: customer.phone },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      customer: { id: customer.customerId },
      balance: { available: 100, pending: 0 },
    });
  });
});
