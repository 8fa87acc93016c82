import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SecretBox } from '../../src/lib/crypto.js';
import { sha256Hex } from '../../src/lib/tokens.js';
import { MINIAPP_TOKEN_TTL_DAYS } from '../../src/modules/client/miniapp-auth.js';
import { issueCustomerToken } from '../../src/modules/customers/customers.service.js';
import { activatePoints, expirePoints } from '../../src/modules/ledger/ledger.service.js';
import { signInitData } from '../e2e/helpers.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createTestCustomer, createTestMerchant, type TestMerchant } from '../helpers/factories.js';
import { addLot, findLedgerViolations } from '../helpers/ledger.js';
import { createStaffSession } from '../helpers/portal.js';
import { commitPayload, DAY_MS, errorCode, postCommit } from '../helpers/pos.js';
import { recordFaultRow } from './report.js';

// Scenario 8b: the app server's clock jumps (forward and back by an hour, a day, two years) while
// PostgreSQL's clock stays right. Only Date is faked (vi.useFakeTimers({ toFake: ['Date'] })), so
// timers and I/O keep working. PostgreSQL's now() is the single clock of record for everything stored:
// one-time codes, customer and refresh tokens, point expiry and activation. The app clock judges only
// what is not stored: a portal access token's exp/iat and a Mini App initData's auth_date.
// Holds (points reserved before a commit) do not exist in the product yet, so nothing here tests them.

const HOUR_MS = 3_600_000;
const YEAR_MS = 365 * DAY_MS;
const SKEWS: Array<[string, number]> = [
  ['+1 h', HOUR_MS],
  ['-1 h', -HOUR_MS],
  ['+1 day', DAY_MS],
  ['-1 day', -DAY_MS],
  ['+2 years', 2 * YEAR_MS],
  ['-2 years', -2 * YEAR_MS],
];
const BOT_TOKEN = '7000000001:AAclock-skew-test-bot-token-000000000';

describe('fault: the app server clock jumps', () => {
  let t: TestApp;
  let merchant: TestMerchant;
  let operations = 0;
  let answered = 0;
  let wrong = 0;

  /** Counts one checked operation; `ok` false is a behaviour the scenario promises never happens. */
  function tally(ok: boolean): void {
    operations += 1;
    answered += 1;
    if (!ok) wrong += 1;
  }

  /** Sets the app's clock to the real time plus `skewMs`; the database's clock is untouched. */
  function skewAppClock(skewMs: number): void {
    vi.useRealTimers();
    const real = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(real + skewMs);
  }

  async function dbNow(): Promise<Date> {
    const { rows } = await sql<{ now: Date }>`select now() as now`.execute(t.db);
    return rows[0]?.now as Date;
  }

  function resolveCode(code: string) {
    return t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers: { 'x-api-key': merchant.apiKey },
      payload: { code },
    });
  }

  beforeAll(async () => {
    t = await createTestApp({ database: { poolMax: 5 } });
    merchant = await createTestMerchant(t.db);
    await t.db
      .updateTable('merchants')
      .set({ telegram_bot_token_enc: new SecretBox(t.config.APP_ENCRYPTION_KEY).seal(BOT_TOKEN) })
      .where('id', '=', merchant.merchantId)
      .execute();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  afterAll(async () => {
    vi.useRealTimers();
    await t?.close();
    recordFaultRow({
      scenario: '8b clock-skew',
      operations,
      answered,
      lost: 0,
      duplicated: 0,
      violations: wrong,
      recoveryMs: null,
      notes: `app clock ${SKEWS.map(([name]) => name).join(', ')}; codes, tokens, initData, expiry judged`,
    });
  });

  it('a one-time code lives exactly its TTL by the database clock, whatever the app clock says', async () => {
    const ttl = t.config.CUSTOMER_CODE_TTL_SECONDS;
    for (const [name, skew] of SKEWS) {
      const customer = await createTestCustomer(t.db, { merchant });
      skewAppClock(skew);
      const issued = await t.app.inject({
        method: 'POST',
        url: '/api/v1/client/code',
        headers: { authorization: `Bearer ${customer.token}` },
      });
      expect(issued.statusCode, name).toBe(200);
      const { code, expiresAt, ttlSeconds } = issued.json<{
        code: string;
        expiresAt: string;
        ttlSeconds: number;
      }>();
      expect(ttlSeconds).toBe(ttl);
      const row = await t.db
        .selectFrom('customer_codes')
        .select([
          'expires_at',
          sql<number>`extract(epoch from expires_at - created_at)::float8`.as('lifetime'),
        ])
        .where('code', '=', code)
        .where('merchant_id', '=', merchant.merchantId)
        .executeTakeFirstOrThrow();
      // Minted by PostgreSQL: exactly the TTL from the database's now(), not from the skewed app clock.
      const lifetimeOk = row.lifetime === ttl;
      const untilExpiry = (row.expires_at.getTime() - (await dbNow()).getTime()) / 1000;
      const answeredOk = new Date(expiresAt).getTime() === row.expires_at.getTime();
      expect({ name, lifetime: row.lifetime, answeredOk }).toEqual({ name, lifetime: ttl, answeredOk: true });
      expect(untilExpiry, name).toBeGreaterThan(ttl - 30);
      expect(untilExpiry, name).toBeLessThanOrEqual(ttl);
      tally(lifetimeOk && answeredOk);

      // Still live a second before its TTL ends (as the database counts it): resolves at the till.
      await sql`update customer_codes set created_at = created_at - make_interval(secs => ${ttl - 1}),
                  expires_at = expires_at - make_interval(secs => ${ttl - 1})
                where code = ${code} and merchant_id = ${merchant.merchantId}`.execute(t.db);
      const live = await resolveCode(code);
      expect(live.statusCode, name).toBe(200);
      expect(live.json<{ customer: { id: string } }>().customer.id).toBe(customer.customerId);
      tally(live.statusCode === 200);

      // Two seconds later it is past its TTL: refused, even with the app clock far behind.
      await sql`update customer_codes set created_at = created_at - interval '2 seconds',
                  expires_at = expires_at - interval '2 seconds'
                where code = ${code} and merchant_id = ${merchant.merchantId}`.execute(t.db);
      const dead = await resolveCode(code);
      expect(dead.statusCode, name).toBe(404);
      tally(dead.statusCode === 404);
      // A purchase with the dead code is refused too and writes nothing.
      const commit = await postCommit(t.app, merchant, {
        customer: { code },
        receipt: { total: 10_000 },
        orderId: `order-${randomUUID()}`,
        outletId: merchant.outletId,
      });
      expect(commit.statusCode, name).toBe(404);
      tally(commit.statusCode === 404);
      vi.useRealTimers();
    }
  });

  it('a portal access token is refused after its exp by the app clock, and a forged one never passes', async () => {
    const staff = await createStaffSession(t.app, t.db, { merchantId: merchant.merchantId, role: 'owner' });
    const me = (token: string) =>
      t.app.inject({
        method: 'GET',
        url: '/api/v1/portal/me',
        headers: { authorization: `Bearer ${token}` },
      });
    const ttlMs = t.config.PORTAL_ACCESS_TOKEN_TTL_SECONDS * 1000;

    for (const [name, skew] of SKEWS) {
      skewAppClock(skew);
      const res = await me(staff.accessToken);
      // Accepted only between its issue time (less five minutes of tolerance for replicas' clocks)
      // and its exp: the jumps forward are past exp, the jumps back put its issue time in the future.
      const expected = skew < ttlMs && skew >= -300_000 ? 200 : 401;
      expect(res.statusCode, name).toBe(expected);
      if (expected === 401) expect(errorCode(res)).toBe('unauthorized');
      tally(res.statusCode === expected);
    }

    // One second past exp by the app clock: refused.
    skewAppClock(ttlMs + 1000);
    const expired = await me(staff.accessToken);
    expect(expired.statusCode).toBe(401);
    tally(expired.statusCode === 401);
    vi.useRealTimers();

    // A forged exp (payload rewritten to live 10 years, signature kept) is refused.
    const [header, payload, signature] = staff.accessToken.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { exp: number };
    const forged = Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 10 * 365 * 86_400 })).toString(
      'base64url',
    );
    const forgedRes = await me(`${header}.${forged}.${signature}`);
    expect(forgedRes.statusCode).toBe(401);
    tally(forgedRes.statusCode === 401);

    // A token minted while the app clock ran two years ahead is refused once the clock is back:
    // its issue time is in the future.
    skewAppClock(2 * YEAR_MS);
    const ahead = await createStaffSession(t.app, t.db, { merchantId: merchant.merchantId, role: 'owner' });
    expect((await me(ahead.accessToken)).statusCode).toBe(200);
    vi.useRealTimers();
    const back = await me(ahead.accessToken);
    expect(back.statusCode).toBe(401);
    tally(back.statusCode === 401);
  });

  it('a refresh token lives by the database clock: a jumped app clock neither kills nor revives it', async () => {
    const refresh = (refreshToken: string) =>
      t.app.inject({ method: 'POST', url: '/api/v1/portal/auth/refresh', payload: { refreshToken } });
    for (const [name, skew] of SKEWS) {
      const staff = await createStaffSession(t.app, t.db, { merchantId: merchant.merchantId, role: 'owner' });
      skewAppClock(skew);
      // Live by the database clock: works even with the app clock two years ahead.
      const ok = await refresh(staff.refreshToken);
      expect(ok.statusCode, name).toBe(200);
      tally(ok.statusCode === 200);
      const next = ok.json<{ refreshToken: string }>().refreshToken;
      const row = await t.db
        .selectFrom('refresh_tokens')
        .select(sql<number>`extract(epoch from expires_at - created_at)::float8 / 86400`.as('lifetimeDays'))
        .where('user_id', '=', staff.userId)
        .where('used_at', 'is', null)
        .executeTakeFirstOrThrow();
      // Issued by PostgreSQL's clock: its lifetime is the configured days, not skewed.
      expect(Math.abs(row.lifetimeDays - t.config.PORTAL_REFRESH_TOKEN_TTL_DAYS), name).toBeLessThan(0.001);
      tally(Math.abs(row.lifetimeDays - t.config.PORTAL_REFRESH_TOKEN_TTL_DAYS) < 0.001);
      // Past its expiry by the database clock: refused, even with the app clock two years behind.
      await sql`update refresh_tokens set expires_at = now() - interval '1 second'
                where user_id = ${staff.userId} and used_at is null`.execute(t.db);
      const dead = await refresh(next);
      expect(dead.statusCode, name).toBe(401);
      tally(dead.statusCode === 401);
      vi.useRealTimers();
    }
  });

  it('a Mini App user token lives by the database clock', async () => {
    const customer = await createTestCustomer(t.db, { merchant });
    const code = (token: string) =>
      t.app.inject({
        method: 'POST',
        url: '/api/v1/client/code',
        headers: { authorization: `Bearer ${token}` },
      });
    for (const [name, skew] of SKEWS) {
      skewAppClock(skew);
      const token = await issueCustomerToken(t.db, {
        merchantId: merchant.merchantId,
        customerId: customer.customerId,
        ttlDays: MINIAPP_TOKEN_TTL_DAYS,
      });
      const row = await t.db
        .selectFrom('customer_tokens')
        .select(sql<number>`extract(epoch from expires_at - now())::float8 / 86400`.as('daysLeft'))
        .where('token_hash', '=', sha256Hex(token))
        .executeTakeFirstOrThrow();
      // Issued for its TTL from the database's now(), whatever the app clock said.
      expect(Math.abs(row.daysLeft - MINIAPP_TOKEN_TTL_DAYS), name).toBeLessThan(0.001);
      const live = await code(token);
      expect(live.statusCode, name).toBe(200);
      tally(live.statusCode === 200 && Math.abs(row.daysLeft - MINIAPP_TOKEN_TTL_DAYS) < 0.001);
      // Expired by the database clock: refused, even with the app clock two years behind.
      await sql`update customer_tokens set expires_at = now() - interval '1 second'
                where token_hash = ${sha256Hex(token)}`.execute(t.db);
      const dead = await code(token);
      expect(dead.statusCode, name).toBe(401);
      tally(dead.statusCode === 401);
      vi.useRealTimers();
    }
  });

  it('Mini App initData older than its max age, or from the future beyond tolerance, is refused', async () => {
    const user = { id: 900_001, first_name: 'Clock' };
    const signIn = (authDate: Date) =>
      t.app.inject({
        method: 'POST',
        url: '/api/v1/client/auth/telegram',
        payload: { merchantId: merchant.merchantId, initData: signInitData(BOT_TOKEN, user, { authDate }) },
      });
    const reason = (res: Awaited<ReturnType<typeof signIn>>) => {
      const { error } = res.json<{ error: { code: string; details?: { reason?: string } } }>();
      return { code: error.code, reason: error.details?.reason };
    };

    for (const [name, skew] of SKEWS) {
      skewAppClock(skew);
      const now = Date.now();
      // Fresh by the app clock: the signature and date pass; this Telegram user has no customer yet.
      const fresh = await signIn(new Date(now - 60_000));
      expect(fresh.statusCode, name).toBe(404);
      expect(errorCode(fresh)).toBe('customer_not_registered');
      tally(fresh.statusCode === 404);
      // A second past the max age (one day): refused.
      const stale = await signIn(new Date(now - DAY_MS - 1000));
      expect(stale.statusCode, name).toBe(401);
      expect(reason(stale)).toMatchObject({ code: 'invalid_init_data', reason: 'stale' });
      tally(stale.statusCode === 401);
      // Ten minutes in the future (tolerance is five): refused.
      const future = await signIn(new Date(now + 10 * 60_000));
      expect(future.statusCode, name).toBe(401);
      expect(reason(future)).toMatchObject({ code: 'invalid_init_data', reason: 'from_future' });
      tally(future.statusCode === 401);
      // Signed at the real time while the app clock is a day or more off: judged by the app clock.
      vi.useRealTimers();
      const realNow = new Date(Date.now() - 5_000);
      skewAppClock(skew);
      const atReal = await signIn(realNow);
      const expectedAtReal = skew > -300_000 && skew < DAY_MS ? 404 : 401;
      expect(atReal.statusCode, name).toBe(expectedAtReal);
      tally(atReal.statusCode === expectedAtReal);
      vi.useRealTimers();
    }
  });

  it('the expiry job with the app clock two years ahead expires nothing early; balances stay whole', async () => {
    const customers = [];
    for (let i = 0; i < 5; i++) {
      const customer = await createTestCustomer(t.db, { merchant });
      await addLot(t.db, merchant, customer.customerId, 1_000, 1);
      await addLot(t.db, merchant, customer.customerId, 2_000, 365);
      await addLot(t.db, merchant, customer.customerId, 500, null);
      customers.push(customer);
    }
    const ids = customers.map((c) => c.customerId);
    const balances = async () =>
      t.db
        .selectFrom('balances')
        .select(['customer_id', 'available', 'pending'])
        .where('customer_id', 'in', ids)
        .orderBy('customer_id')
        .execute();
    const before = await balances();
    expect(before.every((b) => b.available === 3_500)).toBe(true);

    for (const [name, skew] of SKEWS) {
      skewAppClock(skew);
      const expired = await expirePoints(t.db);
      const activated = await activatePoints(t.db);
      expect({ name, expired: expired.points, activated: activated.points }).toEqual({
        name,
        expired: 0,
        activated: 0,
      });
      tally(expired.points === 0 && activated.points === 0);
      // A purchase redeeming points with the app clock off: the ledger decides with now(), not the app.
      const customer = customers[SKEWS.findIndex(([n]) => n === name) % customers.length];
      if (customer) {
        const res = await postCommit(
          t.app,
          merchant,
          commitPayload(merchant, { customerId: customer.customerId, total: 10_000, redeemPoints: 50 }),
        );
        expect(res.statusCode, `${name}: ${res.body}`).toBe(201);
        tally(res.statusCode === 201);
      }
      vi.useRealTimers();
    }

    // The one-day lots become due by the database clock; with the app clock two years behind, the
    // job still expires exactly them.
    await sql`update point_lots set expires_at = now() - interval '1 second'
              where customer_id in (${sql.join(ids)}) and expires_at < now() + interval '2 days'`.execute(
      t.db,
    );
    skewAppClock(-2 * YEAR_MS);
    const due = await expirePoints(t.db);
    vi.useRealTimers();
    const redeemedFromDayLots = 6 * 50; // purchases redeem from the soonest-expiring lot first
    expect(due.points).toBe(5 * 1_000 - redeemedFromDayLots);
    tally(due.points === 5 * 1_000 - redeemedFromDayLots);

    const after = await balances();
    expect(after.every((b) => b.available >= 0 && b.pending >= 0)).toBe(true);
    const violations = await findLedgerViolations(t.db);
    expect(violations).toEqual([]);
    tally(violations.length === 0 && after.every((b) => b.available >= 0));
  });
});
