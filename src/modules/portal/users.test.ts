import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createMerchantTeam,
  createStaffSession,
  loginStaff,
  type MerchantTeam,
  portalRequest,
  type StaffSession,
} from '../../../test/helpers/portal.js';

// Staff accounts: who may manage whom, and that a merchant always keeps an active owner.

let t: TestApp;
let team: MerchantTeam;

beforeAll(async () => {
  t = await createTestApp();
  team = await createMerchantTeam(t.app, t.db);
});
afterAll(async () => {
  await t.close();
});

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

function call(session: StaffSession, method: Method, url: string, payload?: unknown) {
  return portalRequest(t.app, session, { method, url, payload });
}

describe('staff accounts', () => {
  it('creates a user who can sign in, audited without the password', async () => {
    const res = await call(team.admin, 'POST', '/users', {
      email: 'Barista@Example.com',
      password: 'a strong password',
      role: 'cashier',
      name: 'Мария',
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      email: 'Barista@Example.com',
      role: 'cashier',
      name: 'Мария',
      disabled: false,
    });
    const tokens = await loginStaff(t.app, { email: 'barista@example.com', password: 'a strong password' });
    expect(tokens.user.id).toBe(res.json().id);

    const dup = await call(team.owner, 'POST', '/users', {
      email: 'barista@example.com',
      password: 'another password',
      role: 'manager',
    });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error.code).toBe('user_exists');

    const audit = await call(team.owner, 'GET', '/audit-log');
    expect(audit.body).not.toContain('a strong password');
    const entry = audit.json().items.find((e: { action: string }) => e.action === 'user.create');
    expect(entry).toMatchObject({ actor: team.admin.email, after: { role: 'cashier', name: 'Мария' } });
  });

  it('validates the new account naming the field', async () => {
    const shortPassword = await call(team.owner, 'POST', '/users', {
      email: 'x@example.com',
      password: 'short',
      role: 'cashier',
    });
    expect(shortPassword.statusCode).toBe(400);
    expect(shortPassword.json().error.message).toMatch(/^password/);
    const badRole = await call(team.owner, 'POST', '/users', {
      email: 'x@example.com',
      password: 'long enough password',
      role: 'operator',
    });
    expect(badRole.json().error.message).toMatch(/^role/);
    const badEmail = await call(team.owner, 'POST', '/users', {
      email: 'nope',
      password: 'long enough',
      role: 'admin',
    });
    expect(badEmail.json().error.message).toMatch(/^email/);
  });

  it('keeps admins away from owners: no creating, changing, promoting or removing them (403)', async () => {
    const asAdmin = (method: Method, url: string, payload?: unknown) =>
      call(team.admin, method, url, payload);
    const create = await asAdmin('POST', '/users', {
      email: 'boss@example.com',
      password: 'long enough pw',
      role: 'owner',
    });
    expect(create.statusCode).toBe(403);
    expect(create.json().error.code).toBe('forbidden');
    expect((await asAdmin('PATCH', `/users/${team.owner.userId}`, { name: 'x' })).statusCode).toBe(403);
    expect((await asAdmin('PATCH', `/users/${team.manager.userId}`, { role: 'owner' })).statusCode).toBe(403);
    expect((await asAdmin('DELETE', `/users/${team.owner.userId}`)).statusCode).toBe(403);
    // Everything else is theirs to manage.
    const renamed = await asAdmin('PATCH', `/users/${team.manager.userId}`, { name: 'Старший смены' });
    expect(renamed.json()).toMatchObject({ name: 'Старший смены', role: 'manager' });
  });

  it('keeps the last active owner: no demoting, disabling or removing them (409)', async () => {
    const solo = await createMerchantTeam(t.app, t.db);
    const owner = solo.owner;
    const demote = await call(owner, 'PATCH', `/users/${owner.userId}`, { role: 'admin' });
    expect(demote.statusCode).toBe(409);
    expect(demote.json().error.code).toBe('conflict');
    expect((await call(owner, 'DELETE', `/users/${owner.userId}`)).statusCode).toBe(409);
    expect((await call(owner, 'PATCH', `/users/${owner.userId}`, { disabled: true })).statusCode).toBe(409);

    // With a second owner, the first may step down; then the second is the last one.
    const second = await call(owner, 'PATCH', `/users/${solo.admin.userId}`, { role: 'owner' });
    expect(second.json().role).toBe('owner');
    const stepDown = await call(owner, 'PATCH', `/users/${owner.userId}`, { role: 'admin' });
    expect(stepDown.statusCode).toBe(200);
    const last = await call(solo.admin, 'DELETE', `/users/${owner.userId}`);
    expect(last.statusCode).toBe(204);
    const keep = await call(solo.admin, 'PATCH', `/users/${solo.admin.userId}`, { role: 'manager' });
    expect(keep.statusCode).toBe(409);
  });

  it('refuses removing yourself, and disabling someone ends their sessions', async () => {
    const self = await call(team.owner, 'DELETE', `/users/${team.owner.userId}`);
    expect(self.statusCode).toBe(409);
    expect(self.json().error.message).toMatch(/your own account/);

    const staff = await createStaffSession(t.app, t.db, {
      merchantId: team.merchant.merchantId,
      role: 'manager',
    });
    const off = await call(team.owner, 'PATCH', `/users/${staff.userId}`, { disabled: true });
    expect(off.json().disabled).toBe(true);
    const refresh = await t.app.inject({
      method: 'POST',
      url: '/api/v1/portal/auth/refresh',
      payload: { refreshToken: staff.refreshToken },
    });
    expect(refresh.statusCode).toBe(401);
    expect((await call(staff, 'GET', '/customers')).statusCode).toBe(401);
    const login = await t.app.inject({
      method: 'POST',
      url: '/api/v1/portal/auth/login',
      payload: { email: staff.email, password: staff.password },
    });
    expect(login.json().error.code).toBe('account_disabled');

    const on = await call(team.owner, 'PATCH', `/users/${staff.userId}`, { disabled: false });
    expect(on.json().disabled).toBe(false);
    const entries = (await call(team.owner, 'GET', '/audit-log'))
      .json()
      .items.filter((e: { entityId: string }) => e.entityId === staff.userId);
    expect(entries[0]).toMatchObject({
      action: 'user.update',
      before: { disabled: true },
      after: { disabled: false },
    });
  });
});
