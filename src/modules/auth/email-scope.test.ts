import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';
import { createPortalUser } from './auth.service.js';

// Staff emails are unique per merchant, not across the platform: creating a user answers the same
// whether the email exists at another merchant, as an operator, or nowhere, so no tenant learns of
// another's accounts. Sign-in finds the account by email and password; when one person's email and
// password open accounts at several merchants, they choose the merchant.

let t: TestApp;
let a: MerchantTeam;
let b: MerchantTeam;
const operator = { email: `ops-${randomUUID().slice(0, 8)}@example.com`, password: 'operator password' };

beforeAll(async () => {
  t = await createTestApp();
  [a, b] = await Promise.all([
    createMerchantTeam(t.app, t.db, { name: 'Кофейня A' }),
    createMerchantTeam(t.app, t.db, { name: 'Пекарня B' }),
  ]);
  await createPortalUser(t.db, { merchantId: null, role: 'operator', ...operator });
});
afterAll(async () => t?.close());

const createUser = (team: MerchantTeam, email: string, password = 'a strong password') =>
  portalRequest(t.app, team.owner, {
    method: 'POST',
    url: '/users',
    payload: { email, password, role: 'cashier' },
  });

const login = (door: 'portal' | 'admin', payload: object) =>
  t.app.inject({ method: 'POST', url: `/api/v1/${door}/auth/login`, payload });

describe('emails are unique per merchant', () => {
  it('answers alike whether an email is taken at another merchant, by an operator, or free', async () => {
    const free = await createUser(a, `free-${randomUUID().slice(0, 8)}@example.com`);
    const atOtherMerchant = await createUser(a, b.manager.email.toUpperCase());
    const ofOperator = await createUser(a, operator.email);
    for (const res of [free, atOtherMerchant, ofOperator]) {
      expect(res.statusCode, res.body).toBe(201);
      expect(Object.keys(res.json()).sort()).toEqual(Object.keys(free.json()).sort());
    }
    // Within the merchant's own staff the email is taken: that is the merchant's own data.
    const again = await createUser(a, operator.email.toUpperCase());
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('user_exists');
  });

  it('signs each account in with its own password; the same password at two merchants asks which', async () => {
    const email = `both-${randomUUID().slice(0, 8)}@example.com`;
    expect((await createUser(a, email, 'password of A')).statusCode).toBe(201);
    expect((await createUser(b, email, 'password of B')).statusCode).toBe(201);
    const intoA = await login('portal', { email, password: 'password of A' });
    expect(intoA.statusCode).toBe(200);
    expect(intoA.json().user.merchantId).toBe(a.merchant.merchantId);
    const intoB = await login('portal', { email, password: 'password of B' });
    expect(intoB.json().user.merchantId).toBe(b.merchant.merchantId);
    expect((await login('portal', { email, password: 'password of C' })).statusCode).toBe(401);

    const shared = `shared-${randomUUID().slice(0, 8)}@example.com`;
    await createUser(a, shared, 'one password');
    await createUser(b, shared, 'one password');
    const ambiguous = await login('portal', { email: shared, password: 'one password' });
    expect(ambiguous.statusCode).toBe(409);
    expect(ambiguous.json().error.code).toBe('merchant_required');
    expect(ambiguous.json().error.details.merchants).toEqual(
      expect.arrayContaining([
        { id: a.merchant.merchantId, name: 'Кофейня A' },
        { id: b.merchant.merchantId, name: 'Пекарня B' },
      ]),
    );
    const chosen = await login('portal', {
      email: shared,
      password: 'one password',
      merchantId: b.merchant.merchantId,
    });
    expect(chosen.statusCode).toBe(200);
    expect(chosen.json().user.merchantId).toBe(b.merchant.merchantId);
    // A merchant the account does not belong to is simply wrong credentials.
    const elsewhere = await login('portal', {
      email: shared,
      password: 'one password',
      merchantId: randomUUID(),
    });
    expect(elsewhere.statusCode).toBe(401);
  });

  it('keeps operators to the admin door, even when a merchant has a user with their email', async () => {
    const admin = await login('admin', operator);
    expect(admin.statusCode).toBe(200);
    expect(admin.json().user.role).toBe('operator');
    expect((await login('portal', operator)).statusCode).toBe(401);
  });
});
