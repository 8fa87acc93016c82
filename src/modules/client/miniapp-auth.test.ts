import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeTelegram, startFakeTelegram } from '../../../test/fakes/telegram-bot-api.js';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestMerchant, nextPhone, type TestMerchant } from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { SecretBox } from '../../lib/crypto.js';
import { createCustomer } from '../customers/customers.service.js';
import { updateMerchant } from '../merchants/merchants.service.js';
import { connectMerchantBot } from '../telegram/telegram.service.js';
import { INIT_DATA_MAX_AGE_SECONDS, validateInitData } from './miniapp-auth.js';

// initData is signed here with WebCrypto, not node:crypto's createHmac the validator uses, so a
// shared mistake in one helper cannot make both sides agree.
async function hmac(key: Uint8Array | string, message: string): Promise<Uint8Array> {
  const raw = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  const cryptoKey = await crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
  ]);
  return new Uint8Array(await crypto.subtle.sign('HMAC', cryptoKey, new TextEncoder().encode(message)));
}

/** initData as Telegram builds it: fields plus hash, URL-encoded, in Telegram's (unsorted) order. */
async function signInitData(botToken: string, fields: Record<string, string>): Promise<string> {
  const dataCheckString = Object.entries(fields)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
  const secretKey = await hmac('WebAppData', botToken);
  const hash = Buffer.from(await hmac(secretKey, dataCheckString)).toString('hex');
  return new URLSearchParams({ ...fields, hash }).toString();
}

const NOW = new Date('2026-03-01T12:00:00Z');
const nowSeconds = () => String(Math.floor(Date.now() / 1000));

function launchFields(options: { userId: number; authDate: string; firstName?: string }) {
  return {
    query_id: 'AAHdF6IQAAAAAN0XohDhrOrc',
    user: JSON.stringify({
      id: options.userId,
      first_name: options.firstName ?? 'Анна',
      last_name: 'Иванова',
      username: 'anna',
      language_code: 'ru',
      allows_write_to_pm: true,
    }),
    auth_date: options.authDate,
    signature: 'T8aGLlGIWqc7wWiLgMv5eGgqBgs68CM9TlzgpvFjLoNR4RBOKXjlozKDYKdyitVsUx9W1VugcLyJHkE088HDAA',
  };
}

describe('validateInitData', () => {
  const token = '700100:AAFtestTokenForInitDataValidation_12345';
  const authDate = String(Math.floor(NOW.getTime() / 1000) - 60);

  it('accepts initData signed with the bot token and returns the user', async () => {
    const initData = await signInitData(token, launchFields({ userId: 4242, authDate }));
    const result = validateInitData(initData, token, { now: NOW, maxAgeSeconds: 3600 });
    expect(result).toMatchObject({ ok: true, user: { id: 4242, first_name: 'Анна', username: 'anna' } });
    if (result.ok) expect(result.authDate.toISOString()).toBe('2026-03-01T11:59:00.000Z');
  });

  it('refuses a forged hash, and initData signed by another bot', async () => {
    const initData = await signInitData(token, launchFields({ userId: 4242, authDate }));
    const forged = initData.replace(/hash=[0-9a-f]+/, `hash=${'ab'.repeat(32)}`);
    expect(validateInitData(forged, token, { now: NOW })).toMatchObject({ ok: false, reason: 'bad_hash' });
    const otherBot = await signInitData(
      '700200:AAFanotherBotTokenEntirely_0000000',
      launchFields({
        userId: 4242,
        authDate,
      }),
    );
    expect(validateInitData(otherBot, token, { now: NOW })).toMatchObject({ ok: false, reason: 'bad_hash' });
  });

  it('refuses initData whose fields were changed after signing', async () => {
    const initData = await signInitData(token, launchFields({ userId: 4242, authDate }));
    const params = new URLSearchParams(initData);
    params.set('user', (params.get('user') ?? '').replace('4242', '4243'));
    expect(validateInitData(params.toString(), token, { now: NOW })).toMatchObject({
      ok: false,
      reason: 'bad_hash',
    });
    const withExtra = new URLSearchParams(initData);
    withExtra.set('start_param', 'admin');
    expect(validateInitData(withExtra.toString(), token, { now: NOW })).toMatchObject({
      ok: false,
      reason: 'bad_hash',
    });
  });

  it('refuses a stale auth_date and says so; accepts one just inside the window', async () => {
    const maxAgeSeconds = 3600;
    const at = (secondsAgo: number) => String(Math.floor(NOW.getTime() / 1000) - secondsAgo);
    const stale = await signInitData(token, launchFields({ userId: 1, authDate: at(maxAgeSeconds + 1) }));
    const result = validateInitData(stale, token, { now: NOW, maxAgeSeconds });
    expect(result).toMatchObject({ ok: false, reason: 'stale' });
    if (!result.ok) expect(result.message).toContain('auth_date');
    const fresh = await signInitData(token, launchFields({ userId: 1, authDate: at(maxAgeSeconds) }));
    expect(validateInitData(fresh, token, { now: NOW, maxAgeSeconds }).ok).toBe(true);
    // The default window is a day.
    const dayOld = await signInitData(
      token,
      launchFields({ userId: 1, authDate: at(INIT_DATA_MAX_AGE_SECONDS + 5) }),
    );
    expect(validateInitData(dayOld, token, { now: NOW })).toMatchObject({ ok: false, reason: 'stale' });
  });

  it('refuses missing fields, a future auth_date and a repeated field, naming the problem', async () => {
    expect(validateInitData('', token, { now: NOW })).toMatchObject({ ok: false, reason: 'missing_hash' });
    const { auth_date: _drop, ...withoutDate } = launchFields({ userId: 1, authDate });
    expect(validateInitData(await signInitData(token, withoutDate), token, { now: NOW })).toMatchObject({
      ok: false,
      reason: 'missing_auth_date',
    });
    const { user: _user, ...withoutUser } = launchFields({ userId: 1, authDate });
    expect(validateInitData(await signInitData(token, withoutUser), token, { now: NOW })).toMatchObject({
      ok: false,
      reason: 'missing_user',
    });
    const future = String(Math.floor(NOW.getTime() / 1000) + 3600);
    const fromFuture = await signInitData(token, launchFields({ userId: 1, authDate: future }));
    expect(validateInitData(fromFuture, token, { now: NOW })).toMatchObject({
      ok: false,
      reason: 'from_future',
    });
    const signed = await signInitData(token, launchFields({ userId: 1, authDate }));
    expect(validateInitData(`${signed}&auth_date=${authDate}`, token, { now: NOW })).toMatchObject({
      ok: false,
      reason: 'malformed',
    });
  });
});

describe('POST /api/v1/client/auth/telegram', () => {
  let fake: FakeTelegram;
  let t: TestApp;
  let merchant: TestMerchant;
  let botToken: string;

  beforeAll(async () => {
    fake = await startFakeTelegram();
    t = await createTestApp({ env: { TELEGRAM_API_BASE_URL: fake.baseUrl } });
    merchant = await createTestMerchant(t.db, {
      name: 'Кофейня «Зерно»',
      rules: {
        tiers: [
          { name: 'Серебро', minSpend: 100_000, earnRateBp: 700 },
          { name: 'Золото', minSpend: 500_000, earnRateBp: 1000 },
        ],
      },
    });
    botToken = fake.createBot('zerno_bot');
    await connectMerchantBot(t.db, {
      merchantId: merchant.merchantId,
      token: botToken,
      apiBaseUrl: fake.baseUrl,
      box: new SecretBox(t.config.APP_ENCRYPTION_KEY),
    });
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });

  const signIn = (payload: object) =>
    t.app.inject({ method: 'POST', url: '/api/v1/client/auth/telegram', payload });

  it('issues a user token for correctly signed initData that works on /me and /code', async () => {
    const telegramUserId = 5_550_001;
    const phone = nextPhone();
    const customer = await createCustomer(t.db, {
      merchantId: merchant.merchantId,
      phone,
      name: 'Анна',
      telegramUserId,
    });
    await commitPurchaseViaApi(t.app, merchant, { customerId: customer.id, total: 150_000 });

    const initData = await signInitData(
      botToken,
      launchFields({ userId: telegramUserId, authDate: nowSeconds() }),
    );
    const res = await signIn({ initData, merchantId: merchant.merchantId });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.customer).toEqual({ id: customer.id, name: 'Анна', phone });
    expect(body.token).toMatch(/^lu_/);

    const auth = { authorization: `Bearer ${body.token}` };
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/client/me', headers: auth });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toEqual({
      customer: {
        id: customer.id,
        name: 'Анна',
        phone,
        referralCode: customer.referralCode,
        birthDate: null,
      },
      merchant: { id: merchant.merchantId, name: 'Кофейня «Зерно»' },
      // 5% of 1 500 ₽ at the base rate: the purchase itself lifted the customer into Silver.
      balance: { available: 75, pending: 0, held: 0 },
      tier: {
        name: 'Серебро',
        earnRateBp: 700,
        spend: 150_000,
        next: { name: 'Золото', minSpend: 500_000, remaining: 350_000 },
      },
      programme: { pointValueMinor: 100, earnRateBp: 500 },
      // The link opens the merchant's bot with the code as its start parameter.
      referralCode: customer.referralCode,
      referralLink: `https://t.me/zerno_bot?start=ref_${customer.referralCode}`,
    });

    const code = await t.app.inject({ method: 'POST', url: '/api/v1/client/code', headers: auth });
    expect(code.statusCode).toBe(200);
    expect(code.json().code).toMatch(/^\d{6}$/);
  });

  it('shows base-level progress before the first tier', async () => {
    const customer = await createCustomer(t.db, {
      merchantId: merchant.merchantId,
      phone: nextPhone(),
      telegramUserId: 5_550_004,
    });
    const initData = await signInitData(
      botToken,
      launchFields({ userId: 5_550_004, authDate: nowSeconds() }),
    );
    const { token } = (await signIn({ initData, merchantId: merchant.merchantId })).json();
    const me = await t.app.inject({
      method: 'GET',
      url: '/api/v1/client/me',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(me.json().customer.id).toBe(customer.id);
    expect(me.json().tier).toEqual({
      name: null,
      earnRateBp: 500,
      spend: 0,
      next: { name: 'Серебро', minSpend: 100_000, remaining: 100_000 },
    });
  });

  it('answers 401 invalid_init_data for a forged signature and for stale initData', async () => {
    await createCustomer(t.db, {
      merchantId: merchant.merchantId,
      phone: nextPhone(),
      telegramUserId: 5_550_002,
    });
    const fields = launchFields({ userId: 5_550_002, authDate: nowSeconds() });
    const forged = await signInitData('700999:AAFnotTheMerchantsBotToken_000000', fields);
    const res = await signIn({ initData: forged, merchantId: merchant.merchantId });
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toMatchObject({ code: 'invalid_init_data', details: { reason: 'bad_hash' } });

    const twoDaysAgo = String(Math.floor(Date.now() / 1000) - 2 * 86_400);
    const stale = await signInitData(botToken, launchFields({ userId: 5_550_002, authDate: twoDaysAgo }));
    const staleRes = await signIn({ initData: stale, merchantId: merchant.merchantId });
    expect(staleRes.statusCode).toBe(401);
    expect(staleRes.json().error.code).toBe('invalid_init_data');
    expect(staleRes.json().error.message).toContain('auth_date');
  });

  it('answers 404 customer_not_registered for a Telegram user who has not shared a phone', async () => {
    const initData = await signInitData(
      botToken,
      launchFields({ userId: 5_550_003, authDate: nowSeconds() }),
    );
    const res = await signIn({ initData, merchantId: merchant.merchantId });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('customer_not_registered');
    expect(res.json().error.message).toMatch(/bot/);
  });

  it('keeps merchants apart: the user of one merchant is unknown at another with its own bot', async () => {
    const other = await createTestMerchant(t.db, { name: 'Other' });
    const otherToken = fake.createBot();
    await connectMerchantBot(t.db, {
      merchantId: other.merchantId,
      token: otherToken,
      apiBaseUrl: fake.baseUrl,
      box: new SecretBox(t.config.APP_ENCRYPTION_KEY),
    });
    // Signed by the first merchant's bot, presented to the other: the signature cannot match.
    const initData = await signInitData(
      botToken,
      launchFields({ userId: 5_550_001, authDate: nowSeconds() }),
    );
    const res = await signIn({ initData, merchantId: other.merchantId });
    expect(res.statusCode).toBe(401);
    // Signed by the other bot: valid, but the user is not that merchant's customer.
    const own = await signInitData(otherToken, launchFields({ userId: 5_550_001, authDate: nowSeconds() }));
    expect((await signIn({ initData: own, merchantId: other.merchantId })).json().error.code).toBe(
      'customer_not_registered',
    );
  });

  it('answers 404 for a merchant without a bot, and 400 for a body without initData', async () => {
    const bare = await createTestMerchant(t.db);
    const initData = await signInitData(
      botToken,
      launchFields({ userId: 5_550_001, authDate: nowSeconds() }),
    );
    const res = await signIn({ initData, merchantId: bare.merchantId });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('bot_not_connected');
    const unknown = await signIn({ initData, merchantId: randomUUID() });
    expect(unknown.statusCode).toBe(404);
    const missing = await signIn({ merchantId: merchant.merchantId });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.message).toContain('initData');
  });

  it("refuses a suspended merchant's customers: sign-in and every client route get 403", async () => {
    const telegramUserId = 5_550_777;
    await createCustomer(t.db, { merchantId: merchant.merchantId, phone: nextPhone(), telegramUserId });
    const initData = await signInitData(
      botToken,
      launchFields({ userId: telegramUserId, authDate: nowSeconds() }),
    );
    const signedIn = await signIn({ initData, merchantId: merchant.merchantId });
    expect(signedIn.statusCode).toBe(200);
    const auth = { authorization: `Bearer ${signedIn.json().token}` };

    await updateMerchant(t.db, { merchantId: merchant.merchantId, status: 'suspended' });
    try {
      const again = await signIn({ initData, merchantId: merchant.merchantId });
      expect(again.statusCode).toBe(403);
      expect(again.json().error.code).toBe('merchant_suspended');
      for (const [method, url] of [
        ['GET', '/api/v1/client/me'],
        ['POST', '/api/v1/client/code'],
        ['GET', '/api/v1/client/transactions'],
      ] as const) {
        const res = await t.app.inject({ method, url, headers: auth });
        expect(res.statusCode, url).toBe(403);
        expect(res.json().error.code, url).toBe('merchant_suspended');
      }
    } finally {
      await updateMerchant(t.db, { merchantId: merchant.merchantId, status: 'active' });
    }
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/client/me', headers: auth });
    expect(me.statusCode).toBe(200);
  });
});
