import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeTelegram, startFakeTelegram } from '../../../test/fakes/telegram-bot-api.js';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';
import { NotifyBotInfo } from './telegram.service.js';

// Telegram in the portal against a fake Bot API on loopback: connecting the merchant's bot (token
// checked with getMe, webhook set), linking a staff chat to the notify bot through its deep link,
// and the large-purchase threshold.

const NOTIFY_SECRET = 'notify-webhook-secret-0123456789';
let fake: FakeTelegram;
let t: TestApp;
let team: MerchantTeam;

beforeAll(async () => {
  fake = await startFakeTelegram();
  t = await createTestApp({
    env: {
      TELEGRAM_API_BASE_URL: fake.baseUrl,
      API_BASE_URL: 'https://loyalty.example.com',
      TELEGRAM_NOTIFY_BOT_TOKEN: fake.createBot('loyalty_notify_bot'),
      TELEGRAM_NOTIFY_WEBHOOK_SECRET: NOTIFY_SECRET,
    },
  });
  team = await createMerchantTeam(t.app, t.db);
});
afterAll(async () => {
  await t.close();
  await fake.close();
});

function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) {
  return portalRequest(t.app, team.owner, { method, url, payload });
}

describe('the merchant’s customer bot', () => {
  it('connects by token: getMe, setWebhook with a secret, token sealed and never audited', async () => {
    const before = await call('GET', '/telegram');
    expect(before.json()).toEqual({
      bot: null,
      notifyBot: { username: 'loyalty_notify_bot', configured: true },
      staffChats: [],
      settings: { largePurchaseMinor: null },
    });

    const token = fake.createBot('kofeinya_bot');
    const res = await call('POST', '/telegram/bot', { token });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      username: 'kofeinya_bot',
      webhookUrl: `https://loyalty.example.com/telegram/bots/${team.merchant.merchantId}/webhook`,
    });
    const setWebhook = fake.calls.find((c) => c.token === token && c.method === 'setWebhook');
    expect(setWebhook?.params).toMatchObject({
      url: res.json().webhookUrl,
      secret_token: expect.any(String),
    });

    const after = await call('GET', '/telegram');
    expect(after.json().bot).toEqual({ connected: true, username: 'kofeinya_bot' });
    const stored = await t.db
      .selectFrom('merchants')
      .select('telegram_bot_token_enc')
      .where('id', '=', team.merchant.merchantId)
      .executeTakeFirstOrThrow();
    expect(stored.telegram_bot_token_enc).not.toContain(token);

    const audit = await call('GET', '/audit-log');
    expect(audit.body).not.toContain(token);
    expect(audit.json().items[0]).toMatchObject({
      action: 'telegram.bot_connect',
      before: { username: null },
      after: { username: 'kofeinya_bot' },
    });
  });

  it('rejects a token Telegram does not know, or one that cannot be a token, naming the field', async () => {
    const unknown = await call('POST', '/telegram/bot', { token: '123456:AAunknownbottokenxxxxxxxxxxxxx' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.message).toMatch(/^token/);
    const garbage = await call('POST', '/telegram/bot', { token: '../../etc/passwd' });
    expect(garbage.statusCode).toBe(400);
    expect(garbage.json().error.message).toMatch(/^token/);
  });
});

describe('staff notifications', () => {
  it('links a staff chat through the deep link, lists it, and unlinks it', async () => {
    const link = await call('POST', '/telegram/staff-links');
    expect(link.statusCode).toBe(201);
    const { token, deepLink, expiresAt } = link.json();
    expect(deepLink).toBe(`https://t.me/loyalty_notify_bot?start=${token}`);
    expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());

    // The staff member opens the link: Telegram posts /start <token> to the notify bot's webhook.
    const update = await t.app.inject({
      method: 'POST',
      url: '/telegram/notify/webhook',
      headers: { 'x-telegram-bot-api-secret-token': NOTIFY_SECRET },
      payload: {
        update_id: 1,
        message: {
          text: `/start ${token}`,
          chat: { id: 424242, type: 'private' },
          from: { username: 'olga' },
        },
      },
    });
    expect(update.statusCode).toBe(200);

    const status = await call('GET', '/telegram');
    expect(status.json().staffChats).toEqual([
      { id: expect.any(String), chatId: '424242', telegramUsername: 'olga', linkedAt: expect.any(String) },
    ]);
    const chatId = status.json().staffChats[0].id;
    expect((await call('DELETE', `/telegram/staff-chats/${chatId}`)).statusCode).toBe(204);
    expect((await call('GET', '/telegram')).json().staffChats).toEqual([]);
    expect((await call('DELETE', `/telegram/staff-chats/${chatId}`)).statusCode).toBe(404);

    const audit = await call('GET', '/audit-log');
    expect(audit.body).not.toContain(token);
    expect(audit.json().items[0]).toMatchObject({
      action: 'telegram.staff_chat_delete',
      before: { chatId: '424242', telegramUsername: 'olga' },
    });
  });

  it('sets the large-purchase threshold (null turns it off), audited', async () => {
    const set = await call('PUT', '/telegram/settings', { largePurchaseMinor: 500_000 });
    expect(set.json()).toEqual({ largePurchaseMinor: 500_000 });
    expect((await call('GET', '/telegram')).json().settings).toEqual({ largePurchaseMinor: 500_000 });
    const off = await call('PUT', '/telegram/settings', { largePurchaseMinor: null });
    expect(off.json()).toEqual({ largePurchaseMinor: null });
    const bad = await call('PUT', '/telegram/settings', { largePurchaseMinor: -1 });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/^largePurchaseMinor/);
    const audit = await call('GET', '/audit-log');
    expect(audit.json().items[0]).toMatchObject({
      action: 'telegram.settings_update',
      before: { largePurchaseMinor: 500_000 },
      after: { largePurchaseMinor: null },
    });
  });
});

describe('NotifyBotInfo', () => {
  it('asks getMe once, and answers null when the bot is not configured or unknown', async () => {
    const token = fake.createBot('cached_notify_bot');
    const info = new NotifyBotInfo({ TELEGRAM_NOTIFY_BOT_TOKEN: token, TELEGRAM_API_BASE_URL: fake.baseUrl });
    expect(await info.getUsername()).toBe('cached_notify_bot');
    expect(await info.getUsername()).toBe('cached_notify_bot');
    expect(fake.calls.filter((c) => c.token === token && c.method === 'getMe')).toHaveLength(1);

    const none = new NotifyBotInfo({
      TELEGRAM_NOTIFY_BOT_TOKEN: undefined,
      TELEGRAM_API_BASE_URL: fake.baseUrl,
    });
    expect(none.isConfigured).toBe(false);
    expect(await none.getUsername()).toBeNull();
    const unknown = new NotifyBotInfo({
      TELEGRAM_NOTIFY_BOT_TOKEN: '999999:AAnotaknownbot',
      TELEGRAM_API_BASE_URL: fake.baseUrl,
    });
    expect(await unknown.getUsername()).toBeNull();
  });
});
