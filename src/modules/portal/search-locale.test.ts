import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer, createTestMerchant } from '../../../test/helpers/factories.js';
import { adminRequest } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';

// Case-insensitive search must not depend on the locale the database was created with: production
// databases are made by others, and a database with the C locale folds only ASCII letters.

const ADMIN_TOKEN = 'admin-test-operator-token-0123456789';
let t: TestApp;
let team: MerchantTeam;

beforeAll(async () => {
  t = await createTestApp({ env: { ADMIN_API_TOKEN: ADMIN_TOKEN }, database: { locale: 'C' } });
  team = await createMerchantTeam(t.app, t.db);
  await createTestCustomer(t.db, { merchant: team.merchant, phone: '+79161234567', name: 'Анна Петрова' });
  await createTestCustomer(t.db, { merchant: team.merchant, phone: '+79035550011', name: 'Ёжик Öztürk' });
});
afterAll(async () => {
  await t.close();
});

describe('search on a database created with the C locale', () => {
  it('finds customers by a Cyrillic or accented name in any case', async () => {
    const names = async (q: string) => {
      const res = await portalRequest(t.app, team.cashier, {
        method: 'GET',
        url: `/customers?q=${encodeURIComponent(q)}`,
      });
      expect(res.statusCode).toBe(200);
      return res.json().items.map((c: { name: string }) => c.name);
    };
    expect(await names('анна')).toEqual(['Анна Петрова']);
    expect(await names('ПЕТРОВА')).toEqual(['Анна Петрова']);
    expect(await names('ёжик')).toEqual(['Ёжик Öztürk']);
    expect(await names('ÖZTÜRK')).toEqual(['Ёжик Öztürk']);
  });

  it('finds merchants by a Cyrillic name in any case', async () => {
    const merchant = await createTestMerchant(t.db, { name: 'Чайная «Листок»' });
    const res = await adminRequest(t.app, {
      method: 'GET',
      url: `/api/v1/admin/merchants?q=${encodeURIComponent('ЛИСТОК')}`,
      token: ADMIN_TOKEN,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().items.map((m: { id: string }) => m.id)).toEqual([merchant.merchantId]);
  });
});
