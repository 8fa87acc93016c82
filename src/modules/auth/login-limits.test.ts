import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestMerchant } from '../../../test/helpers/factories.js';
import { createStaffSession } from '../../../test/helpers/portal.js';
import { createRedis } from '../../redis.js';
import { createPortalUser } from './auth.service.js';

// Login limits that slow guessing without locking anybody else out: behind a trusted reverse proxy
// every client is counted by its own address; an account is limited per account and address,
// plus a ceiling over all addresses that delays instead of blocking; the portal and the admin
// panel count apart; and an attempt is reserved before its password is checked, so parallel
// requests cannot beat the limit. Run with and without Redis.

const PROXY = '10.9.9.9';
const env = {
  TRUST_PROXY: PROXY,
  LOGIN_MAX_FAILURES_PER_ACCOUNT: '3',
  LOGIN_MAX_FAILURES_PER_IP: '5',
  LOGIN_WINDOW_SECONDS: '600',
  LOGIN_ACCOUNT_SLOWDOWN_AFTER: '4',
  LOGIN_ACCOUNT_SLOWDOWN_MS: '400',
};

/** A fresh client address (IPv6 documentation range, random), so Redis keys of other runs never collide. */
function clientIp(): string {
  const hex = randomUUID().replaceAll('-', '');
  return `2001:db8:${hex.slice(0, 4)}:${hex.slice(4, 8)}:${hex.slice(8, 12)}::${hex.slice(12, 16)}`;
}

const variants: Array<[string, () => Redis | null]> = [
  ['in memory', () => null],
  ['in Redis', () => createRedis(process.env.REDIS_URL)],
];

describe.each(variants)('login limits (%s)', (name, makeRedis) => {
  let t: TestApp;
  let redis: Redis | null;
  let merchantId: string;

  beforeAll(async () => {
    redis = makeRedis();
    if (name === 'in Redis' && redis) await new Promise((resolve) => redis?.once('ready', resolve));
    t = await createTestApp({ env, redis });
    merchantId = (await createTestMerchant(t.db)).merchantId;
  });
  afterAll(async () => {
    await t?.close();
    redis?.disconnect();
  });

  const login = (
    door: 'portal' | 'admin',
    body: { email: string; password: string },
    client: string,
    remoteAddress = PROXY,
  ) =>
    t.app.inject({
      method: 'POST',
      url: `/api/v1/${door}/auth/login`,
      payload: { email: body.email, password: body.password },
      remoteAddress,
      headers: { 'x-forwarded-for': client },
    });

  it.skipIf(name === 'in Redis' && !process.env.REDIS_URL)(
    'counts the real client behind the trusted proxy, not the proxy',
    async () => {
      const owner = await createStaffSession(t.app, t.db, { merchantId, role: 'owner' });
      const attacker = clientIp();
      for (let i = 0; i < 8; i++) {
        await login('portal', { email: `nobody-${randomUUID()}@example.com`, password: 'guess' }, attacker);
      }
      expect((await login('portal', owner, attacker)).statusCode).toBe(429);
      // Everybody else comes through the same proxy and is not affected.
      expect((await login('portal', owner, clientIp())).statusCode).toBe(200);
      // X-Forwarded-For from an address that is not a trusted proxy is ignored: it is that address
      // that gets counted, so a client cannot escape its limit by inventing addresses.
      const direct = clientIp();
      for (let i = 0; i < 5; i++) {
        const res = await login(
          'portal',
          { email: `x-${randomUUID()}@example.com`, password: 'g' },
          clientIp(),
          direct,
        );
        expect(res.statusCode).toBe(401);
      }
      expect((await login('portal', owner, clientIp(), direct)).statusCode).toBe(429);
    },
  );

  it.skipIf(name === 'in Redis' && !process.env.REDIS_URL)(
    'limits an account per address; other addresses only slow down, the owner is never locked out',
    async () => {
      const owner = await createStaffSession(t.app, t.db, { merchantId, role: 'owner' });
      const wrong = { email: owner.email, password: 'wrong password' };
      const stranger = clientIp();
      for (let i = 0; i < 3; i++) expect((await login('portal', wrong, stranger)).statusCode).toBe(401);
      const blocked = await login('portal', owner, stranger);
      expect(blocked.statusCode).toBe(429);
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
      // The stranger may still sign in to an account of their own from that address.
      const own = await createStaffSession(t.app, t.db, { merchantId, role: 'cashier' });
      expect((await login('portal', own, stranger)).statusCode).toBe(200);

      // Failures from many addresses pass the account's ceiling: attempts are delayed, not refused.
      for (let i = 0; i < 3; i++) expect((await login('portal', wrong, clientIp())).statusCode).toBe(401);
      const started = Date.now();
      const ok = await login('portal', owner, clientIp());
      expect(ok.statusCode).toBe(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    },
  );

  it.skipIf(name === 'in Redis' && !process.env.REDIS_URL)(
    'keeps the portal and the admin panel apart',
    async () => {
      const owner = await createStaffSession(t.app, t.db, { merchantId, role: 'owner' });
      const client = clientIp();
      for (let i = 0; i < 5; i++) {
        const res = await login('admin', { email: `op-${randomUUID()}@example.com`, password: 'g' }, client);
        expect(res.statusCode).toBe(401);
      }
      expect((await login('admin', { email: 'x@example.com', password: 'g' }, client)).statusCode).toBe(429);
      expect((await login('portal', owner, client)).statusCode).toBe(200);
    },
  );

  it.skipIf(name === 'in Redis' && !process.env.REDIS_URL)(
    'checks at most the limit of 15 simultaneous wrong passwords',
    async () => {
      const email = `target-${randomUUID()}@example.com`;
      await createPortalUser(t.db, { merchantId, email, password: 'the right password', role: 'owner' });
      const client = clientIp();
      const answers = await Promise.all(
        Array.from({ length: 15 }, () => login('portal', { email, password: 'wrong password' }, client)),
      );
      const checked = answers.filter((res) => res.statusCode === 401).length;
      expect(answers.every((res) => res.statusCode === 401 || res.statusCode === 429)).toBe(true);
      expect(checked).toBeLessThanOrEqual(3);
      expect(checked).toBeGreaterThan(0);
    },
  );
});
