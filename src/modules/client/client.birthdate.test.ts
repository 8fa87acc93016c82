import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';

// A customer who joined through the bot gives their date of birth in the Mini App, so the merchant's
// birthday campaigns reach them too. Once: the date is not theirs to move afterwards.

let t: TestApp;
let merchant: TestMerchant;

beforeAll(async () => {
  t = await createTestApp();
  merchant = await createTestMerchant(t.db);
}, 120_000);
afterAll(async () => {
  await t.close();
}, 120_000);

function patchMe(token: string, payload: unknown) {
  return t.app.inject({
    method: 'PATCH',
    url: '/api/v1/client/me',
    headers: { authorization: `Bearer ${token}` },
    payload: payload as object,
  });
}

describe('PATCH /api/v1/client/me', () => {
  it('sets the date of birth once and shows it in the profile; a second date is a 409', async () => {
    const customer = await createTestCustomer(t.db, { merchant });
    const before = await t.app.inject({
      method: 'GET',
      url: '/api/v1/client/me',
      headers: { authorization: `Bearer ${customer.token}` },
    });
    expect(before.json().customer.birthDate).toBeNull();

    const set = await patchMe(customer.token, { birthDate: '1990-03-12' });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json().customer).toMatchObject({ id: customer.customerId, birthDate: '1990-03-12' });
    expect(set.json().balance).toBeDefined();

    const again = await patchMe(customer.token, { birthDate: '1991-04-13' });
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatchObject({
      code: 'birth_date_already_set',
      details: { field: 'birthDate', birthDate: '1990-03-12' },
    });
    const { rows } = await sql<{ d: string }>`
      select to_char(birth_date, 'YYYY-MM-DD') as d from customers where id = ${customer.customerId}`.execute(
      t.db,
    );
    expect(rows[0]?.d).toBe('1990-03-12');
  });

  it('refuses a date that is not a real one, one in the future, or other fields, naming the field', async () => {
    const customer = await createTestCustomer(t.db, { merchant });
    const tomorrow = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10);
    for (const payload of [
      { birthDate: '1990-02-30' },
      { birthDate: '12.03.1990' },
      { birthDate: tomorrow },
      { birthDate: '1850-01-01' },
      {},
      { birthDate: '1990-03-12', name: 'Someone else' },
    ]) {
      const res = await patchMe(customer.token, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error.code).toBe('validation_error');
      expect(res.body).toMatch(/birthDate|name/);
    }
    // Nothing was stored: the customer can still give their date.
    expect((await patchMe(customer.token, { birthDate: '2001-12-31' })).statusCode).toBe(200);
  });

  it('needs the customer token', async () => {
    const res = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/client/me',
      payload: { birthDate: '1990-03-12' },
    });
    expect(res.statusCode).toBe(401);
  });
});
