import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestMerchant } from '../../../test/helpers/factories.js';
import { createStaffSession, loginStaff, portalRequest } from '../../../test/helpers/portal.js';

// Portal sign-in as a user meets it: login limits per account and per IP address (429 with
// Retry-After), rotating refresh tokens whose reuse revokes the whole family, logout, and the
// runbook's metrics portal_auth_login_total / portal_auth_refresh_total by result.

let t: TestApp;
let merchantId: string;

beforeAll(async () => {
  t = await createTestApp({
    env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '3', LOGIN_MAX_FAILURES_PER_IP: '5', LOGIN_WINDOW_SECONDS: '600' },
  });
  merchantId = (await createTestMerchant(t.db)).merchantId;
});
afterAll(async () => {
  await t.close();
});

function login(email: string, password: string, remoteAddress = '10.0.0.1') {
  return t.app.inject({
    method: 'POST',
    url: '/api/v1/portal/auth/login',
    payload: { email, password },
    remoteAddress,
  });
}

function refresh(refreshToken: string) {
  return t.app.inject({ method: 'POST', url: '/api/v1/portal/auth/refresh', payload: { refreshToken } });
}

/** The value of one labelled series in /metrics (0 when absent). */
async function metric(name: string, result: string): Promise<number> {
  const res = await t.app.inject({ method: 'GET', url: '/metrics' });
  const line = res.body.split('\n').find((l) => l.startsWith(`${name}{result="${result}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('login limits', () => {
  it('locks an account from an address after its failed attempts (429 with Retry-After), even with the right password', async () => {
    const staff = await createStaffSession(t.app, t.db, { merchantId, role: 'owner' });
    const failuresBefore = await metric('portal_auth_login_total', 'failure');
    const limitedBefore = await metric('portal_auth_login_total', 'rate_limited');
    const successBefore = await metric('portal_auth_login_total', 'success');
    for (let i = 0; i < 3; i++) {
      const res = await login(staff.email, 'wrong password', '10.1.0.1');
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('invalid_credentials');
    }
    const blocked = await login(staff.email.toUpperCase(), staff.password, '10.1.0.1');
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json().error.code).toBe('rate_limited');
    const retryAfter = Number(blocked.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(600);

    expect(await metric('portal_auth_login_total', 'failure')).toBe(failuresBefore + 3);
    expect(await metric('portal_auth_login_total', 'rate_limited')).toBe(limitedBefore + 1);
    // Another account from that address is not affected, nor the owner from another address.
    const other = await createStaffSession(t.app, t.db, { merchantId, role: 'manager' });
    expect((await login(other.email, other.password, '10.1.0.1')).statusCode).toBe(200);
    expect((await login(staff.email, staff.password, '10.1.0.2')).statusCode).toBe(200);
    expect(await metric('portal_auth_login_total', 'success')).toBe(successBefore + 3);
  });

  it('locks an IP address after failures across accounts, and only that address', async () => {
    const staff = await createStaffSession(t.app, t.db, { merchantId, role: 'admin' });
    for (let i = 0; i < 5; i++) {
      const res = await login(`nobody${i}@example.com`, 'guess', '10.2.0.1');
      expect(res.statusCode).toBe(401);
    }
    const blocked = await login(staff.email, staff.password, '10.2.0.1');
    expect(blocked.statusCode).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await login(staff.email, staff.password, '10.2.0.2')).statusCode).toBe(200);
  });
});

describe('refresh tokens', () => {
  it('rotate on every use; reusing one revokes the family, the newest token included', async () => {
    const staff = await createStaffSession(t.app, t.db, { merchantId, role: 'owner' });
    const successBefore = await metric('portal_auth_refresh_total', 'success');
    const reusedBefore = await metric('portal_auth_refresh_total', 'reused');

    const first = await refresh(staff.refreshToken);
    expect(first.statusCode).toBe(200);
    const second = first.json();
    expect(second.refreshToken).not.toBe(staff.refreshToken);
    expect(second.user).toMatchObject({ id: staff.userId, role: 'owner', merchantId });
    // The new access token works.
    expect((await portalRequest(t.app, second, { method: 'GET', url: '/outlets' })).statusCode).toBe(200);

    const third = await refresh(second.refreshToken);
    expect(third.statusCode).toBe(200);

    // The first token again: it leaked; the family is revoked.
    const reused = await refresh(staff.refreshToken);
    expect(reused.statusCode).toBe(401);
    expect(reused.json().error.code).toBe('refresh_token_reused');
    const newest = await refresh(third.json().refreshToken);
    expect(newest.statusCode).toBe(401);

    expect(await metric('portal_auth_refresh_total', 'success')).toBe(successBefore + 2);
    expect(await metric('portal_auth_refresh_total', 'reused')).toBeGreaterThanOrEqual(reusedBefore + 1);
    // Another login of the same user is a separate family and keeps working.
    const again = await loginStaff(t.app, { email: staff.email, password: staff.password });
    expect((await refresh(again.refreshToken)).statusCode).toBe(200);
  });

  it('answers 401 for an unknown token and counts it as a failure', async () => {
    const before = await metric('portal_auth_refresh_total', 'failure');
    const res = await refresh('lr_not-a-real-token');
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('invalid_refresh_token');
    expect(await metric('portal_auth_refresh_total', 'failure')).toBe(before + 1);
  });
});

describe('logout', () => {
  it('ends the session: its refresh token no longer works', async () => {
    const staff = await createStaffSession(t.app, t.db, { merchantId, role: 'cashier' });
    const rotated = (await refresh(staff.refreshToken)).json();
    const out = await t.app.inject({
      method: 'POST',
      url: '/api/v1/portal/auth/logout',
      payload: { refreshToken: rotated.refreshToken },
    });
    expect(out.statusCode).toBe(204);
    expect((await refresh(rotated.refreshToken)).statusCode).toBe(401);
  });
});

describe('GET /me', () => {
  it('shows the signed-in user with the merchant name', async () => {
    const staff = await createStaffSession(t.app, t.db, { merchantId, role: 'manager' });
    const res = await portalRequest(t.app, staff, { method: 'GET', url: '/me' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: staff.userId, role: 'manager', merchantName: 'Test merchant' });
  });
});
