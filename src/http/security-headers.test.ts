import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import helmet from 'helmet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { createTestMerchant } from '../../test/helpers/factories.js';
import { createStaffSession } from '../../test/helpers/portal.js';
import { createPortalUser } from '../modules/auth/auth.service.js';
import { BASE_CSP_DIRECTIVES, headersOf } from './security-headers.js';

const HSTS_TEST = { maxAge: 31_536_000, includeSubDomains: true };

// Headers a browser or a proxy acts on: nosniff everywhere, nothing that issues a token may be
// cached, HSTS only for clients that came over https (as a trusted proxy reports it), and a
// client's X-Request-Id echoed only when it is a short token (it ends up in every log line).

const PROXY = '10.8.8.8';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ env: { TRUST_PROXY: PROXY } });
});
afterAll(async () => t?.close());

describe('security headers', () => {
  it('are computed once as exactly the headers helmet sets on a real response', () => {
    const options = {
      contentSecurityPolicy: { directives: BASE_CSP_DIRECTIVES },
      strictTransportSecurity: HSTS_TEST,
    };
    const middleware = helmet(options);
    const response = new ServerResponse(new IncomingMessage(new Socket()));
    middleware(response.req, response, () => {});
    const computed = Object.fromEntries(
      headersOf(middleware).map(([name, value]) => [name.toLowerCase(), value]),
    );
    expect(computed).toEqual(
      Object.fromEntries(Object.entries(response.getHeaders()).map(([name, value]) => [name, String(value)])),
    );
    expect(Object.keys(computed)).toEqual(
      expect.arrayContaining(['content-security-policy', 'strict-transport-security']),
    );
  });

  it('sends nosniff and the other helmet headers on API answers, errors included', async () => {
    for (const url of ['/api/v1/client/me', '/api/v1/portal/outlets', '/health', '/nowhere']) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
      expect(res.headers['x-frame-options'], url).toBeDefined();
      expect(res.headers['content-security-policy'], url).toContain("frame-ancestors 'none'");
    }
  });

  it('forbids caching of every answer that issues a token', async () => {
    const { merchantId } = await createTestMerchant(t.db);
    const staff = await createStaffSession(t.app, t.db, { merchantId, role: 'owner' });
    const operator = { email: 'ops@example.com', password: 'operator password' };
    await createPortalUser(t.db, { merchantId: null, role: 'operator', ...operator });
    const login = await t.app.inject({
      method: 'POST',
      url: '/api/v1/portal/auth/login',
      payload: { email: staff.email, password: staff.password },
    });
    const refresh = await t.app.inject({
      method: 'POST',
      url: '/api/v1/portal/auth/refresh',
      payload: { refreshToken: login.json().refreshToken },
    });
    const adminLogin = await t.app.inject({
      method: 'POST',
      url: '/api/v1/admin/auth/login',
      payload: operator,
    });
    const code = await t.app.inject({ method: 'POST', url: '/api/v1/client/code' });
    const miniApp = await t.app.inject({
      method: 'POST',
      url: '/api/v1/client/auth/telegram',
      payload: { initData: 'user=1&hash=00', merchantId },
    });
    for (const [name, res, status] of [
      ['portal login', login, 200],
      ['portal refresh', refresh, 200],
      ['admin login', adminLogin, 200],
      ['customer code', code, 401],
      ['Mini App sign-in', miniApp, 404],
    ] as const) {
      expect(res.statusCode, name).toBe(status);
      expect(res.headers['cache-control'], name).toBe('no-store');
    }
  });

  it('sends HSTS only when the client came over https through a trusted proxy', async () => {
    const get = (remoteAddress: string, proto?: string) =>
      t.app.inject({
        method: 'GET',
        url: '/health',
        remoteAddress,
        headers: proto ? { 'x-forwarded-proto': proto } : {},
      });
    const https = await get(PROXY, 'https');
    expect(https.headers['strict-transport-security']).toMatch(/max-age=31536000/);
    expect((await get(PROXY, 'http')).headers['strict-transport-security']).toBeUndefined();
    expect((await get(PROXY)).headers['strict-transport-security']).toBeUndefined();
    // Anybody else cannot claim https.
    expect((await get('203.0.113.5', 'https')).headers['strict-transport-security']).toBeUndefined();
  });

  it("keeps a client's X-Request-Id only when it is a short token", async () => {
    const idOf = async (value: string) =>
      (await t.app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': value } })).headers[
        'x-request-id'
      ];
    for (const good of ['abc-123', 'req_1.2', 'A'.repeat(64), crypto.randomUUID()]) {
      expect(await idOf(good)).toBe(good);
    }
    for (const bad of ['A'.repeat(65), 'has space', '<script>', 'line\\nbreak', 'üñí', 'a/b']) {
      const id = await idOf(bad);
      expect(id, bad).not.toBe(bad);
      expect(id, bad).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});
