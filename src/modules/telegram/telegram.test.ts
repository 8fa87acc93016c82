import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeTelegram, startFakeTelegram } from '../../../test/fakes/telegram-bot-api.js';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import { type Config, loadConfig } from '../../config.js';
import { AppError, registerErrorHandler } from '../../http/errors.js';
import { SecretBox } from '../../lib/crypto.js';
import { createMerchant } from '../merchants/merchants.service.js';
import { sendTelegramMessage } from './telegram.client.js';
import {
  formatCustomerNotification,
  formatMoney,
  formatPoints,
  formatStaffNotification,
  normalizeLocale,
} from './telegram.messages.js';
import { telegramRoutes } from './telegram.routes.js';
import {
  connectMerchantBot,
  createStaffLinkToken,
  getMerchantBotToken,
  handleNotifyBotUpdate,
  listStaffChats,
  type NotifyBotUpdate,
  registerNotifyWebhook,
  verifyMerchantBotSecret,
} from './telegram.service.js';
import { botKeyOf, TelegramThrottle, type ThrottleClock } from './telegram.throttle.js';

let fake: FakeTelegram;
let t: TestDatabase;
beforeAll(async () => {
  [fake, t] = await Promise.all([startFakeTelegram(), createTestDatabase()]);
});
afterAll(async () => {
  await Promise.all([fake.close(), t.drop()]);
});

const NARROW = '\u202f';
const NBSP = '\u00a0';

/** A clock whose sleep moves time forward at once and remembers how long each wait was. */
function steppingClock(): ThrottleClock & { sleeps: number[] } {
  let now = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
}

/** A clock that only moves when the test says so; sleepers wake when their time has come. */
function manualClock() {
  let now = 0;
  const sleepers: Array<{ at: number; wake: () => void }> = [];
  const clock: ThrottleClock = {
    now: () => now,
    sleep: (ms) => new Promise<void>((wake) => sleepers.push({ at: now + ms, wake })),
  };
  async function advance(ms: number): Promise<void> {
    now += ms;
    for (const s of sleepers.filter((x) => x.at <= now)) {
      sleepers.splice(sleepers.indexOf(s), 1);
      s.wake();
    }
    // Let the woken waits run up to their next sleep.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { clock, advance, sleepers };
}

function tracked(promise: Promise<void>) {
  const state = { done: false };
  void promise.then(() => {
    state.done = true;
  });
  return state;
}

describe('sendTelegramMessage', () => {
  it('sends and reports ok, passing keyboard and parse mode through', async () => {
    const token = fake.createBot();
    const result = await sendTelegramMessage({
      token,
      chatId: 1001,
      text: 'Привет',
      apiBaseUrl: fake.baseUrl,
      parseMode: 'HTML',
      replyMarkup: { inline_keyboard: [[{ text: 'Open', url: 'https://example.com' }]] },
    });
    expect(result).toMatchObject({ result: 'ok', statusCode: 200 });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    const call = fake.calls.findLast((c) => c.token === token);
    expect(call?.params).toMatchObject({
      chat_id: 1001,
      text: 'Привет',
      parse_mode: 'HTML',
      reply_markup: { inline_keyboard: [[{ text: 'Open', url: 'https://example.com' }]] },
    });
  });

  it('maps 429 to rate_limited with retry_after and pauses the bot in the throttle', async () => {
    const token = fake.createBot();
    const clock = steppingClock();
    const throttle = new TelegramThrottle({ clock });
    fake.rateLimitNext(1, 7);
    const result = await sendTelegramMessage({
      token,
      chatId: 1002,
      text: 'x',
      apiBaseUrl: fake.baseUrl,
      throttle,
    });
    expect(result).toMatchObject({ result: 'rate_limited', statusCode: 429, retryAfterSeconds: 7 });
    expect(result.isPermanent).toBeUndefined();
    expect(throttle.pausedFor(botKeyOf(token))).toBe(7_000);
    expect(JSON.stringify(result)).not.toContain(token);

    // The next send of that bot, to any chat, waits out retry_after before calling Telegram.
    const next = await sendTelegramMessage({
      token,
      chatId: 1003,
      text: 'y',
      apiBaseUrl: fake.baseUrl,
      throttle,
    });
    expect(next.result).toBe('ok');
    expect(clock.sleeps).toEqual([7_000]);
  });

  it('marks a blocked bot (403) and a missing chat (400) as permanent failures', async () => {
    const token = fake.createBot();
    fake.failChat(2001, 'blocked');
    fake.failChat(2002, 'not_found');
    const blocked = await sendTelegramMessage({ token, chatId: 2001, text: 'x', apiBaseUrl: fake.baseUrl });
    expect(blocked).toMatchObject({ result: 'http_error', statusCode: 403, isPermanent: true });
    expect(blocked.error).toContain('blocked');
    const missing = await sendTelegramMessage({ token, chatId: '2002', text: 'x', apiBaseUrl: fake.baseUrl });
    expect(missing).toMatchObject({ result: 'http_error', statusCode: 400, isPermanent: true });
    for (const r of [blocked, missing]) expect(JSON.stringify(r)).not.toContain(token);
  });

  it('reports other API errors with their code, retryable, and never shows the token', async () => {
    const unknown = '123456789:AAHunknownTokenNobodyRegistered_123';
    const result = await sendTelegramMessage({
      token: unknown,
      chatId: 1,
      text: 'x',
      apiBaseUrl: fake.baseUrl,
    });
    expect(result).toMatchObject({ result: 'http_error', statusCode: 401, error: '401: Unauthorized' });
    expect(result.isPermanent).toBeUndefined();
    expect(JSON.stringify(result)).not.toContain(unknown);
  });

  it('reports network failures as error and slow answers as timeout, without the token', async () => {
    const token = fake.createBot();
    const gone = await startFakeTelegram();
    await gone.close();
    const refused = await sendTelegramMessage({ token, chatId: 1, text: 'x', apiBaseUrl: gone.baseUrl });
    expect(refused.result).toBe('error');
    expect(refused.error).toMatch(/sendMessage/);
    expect(JSON.stringify(refused)).not.toContain(token);
    expect(JSON.stringify(refused)).not.toContain(token.split(':')[1]);

    fake.delayNext(1, 2_000);
    const slow = await sendTelegramMessage({
      token,
      chatId: 1,
      text: 'x',
      apiBaseUrl: fake.baseUrl,
      timeoutMs: 100,
    });
    expect(slow.result).toBe('timeout');
    expect(JSON.stringify(slow)).not.toContain(token);
  });
});

describe('TelegramThrottle', () => {
  it('makes a second message to the same chat wait a second; other chats go at once', async () => {
    const clock = steppingClock();
    const throttle = new TelegramThrottle({ clock });
    await throttle.wait({ botKey: 'bot', chatId: 1 });
    await throttle.wait({ botKey: 'bot', chatId: 2 });
    expect(clock.sleeps).toEqual([]);
    await throttle.wait({ botKey: 'bot', chatId: 1 });
    expect(clock.sleeps).toEqual([1_000]);
    // Another bot talking to the same chat has its own limits.
    await throttle.wait({ botKey: 'other', chatId: 1 });
    expect(clock.sleeps).toEqual([1_000]);
  });

  it('lets 30 messages a second through per bot and holds the 31st', async () => {
    const clock = steppingClock();
    const throttle = new TelegramThrottle({ clock });
    for (let chat = 1; chat <= 30; chat += 1) await throttle.wait({ botKey: 'bot', chatId: chat });
    expect(clock.sleeps).toEqual([]);
    await throttle.wait({ botKey: 'bot', chatId: 31 });
    expect(clock.sleeps).toEqual([1_000]);
    await throttle.wait({ botKey: 'another-bot', chatId: 32 });
    expect(clock.sleeps).toEqual([1_000]);
  });

  it('gives concurrent sends to one chat distinct slots a second apart', async () => {
    const { clock, advance, sleepers } = manualClock();
    const throttle = new TelegramThrottle({ clock });
    const waits = [1, 2, 3].map(() => tracked(throttle.wait({ botKey: 'bot', chatId: 7 })));
    await advance(0);
    expect(waits.map((w) => w.done)).toEqual([true, false, false]);
    expect(sleepers.map((s) => s.at)).toEqual([1_000, 2_000]);
    await advance(1_000);
    expect(waits.map((w) => w.done)).toEqual([true, true, false]);
    await advance(1_000);
    expect(waits.every((w) => w.done)).toBe(true);
  });

  it('holds a group chat to 20 messages a minute', async () => {
    const clock = steppingClock();
    const throttle = new TelegramThrottle({ clock });
    for (let i = 0; i < 21; i += 1) await throttle.wait({ botKey: 'bot', chatId: -100500 });
    expect(clock.sleeps.reduce((a, b) => a + b, 0)).toBe(60_000);
  });

  it('pauseBot holds every chat of that bot, including sends already waiting', async () => {
    const { clock, advance } = manualClock();
    const throttle = new TelegramThrottle({ clock });
    await throttle.wait({ botKey: 'bot', chatId: 1 });
    const queued = tracked(throttle.wait({ botKey: 'bot', chatId: 1 }));
    throttle.pauseBot('bot', 5);
    const fresh = tracked(throttle.wait({ botKey: 'bot', chatId: 2 }));
    const otherBot = tracked(throttle.wait({ botKey: 'other', chatId: 1 }));
    await advance(1_000);
    expect(otherBot.done).toBe(true);
    expect(queued.done).toBe(false);
    expect(fresh.done).toBe(false);
    await advance(3_999);
    expect(queued.done || fresh.done).toBe(false);
    await advance(1);
    expect(queued.done && fresh.done).toBe(true);
  });
});

describe('connectMerchantBot', () => {
  const box = new SecretBox('a'.repeat(64));

  it('checks the token, registers the webhook with a secret and stores the token sealed', async () => {
    const merchant = await createMerchant(t.db, { name: 'Кофейня' });
    const token = fake.createBot('coffee_bot');
    const connected = await connectMerchantBot(t.db, {
      merchantId: merchant.id,
      token,
      apiBaseUrl: fake.baseUrl,
      apiBaseUrlForWebhook: 'https://loyalty.example.com/',
      box,
    });
    const webhookUrl = `https://loyalty.example.com/telegram/bots/${merchant.id}/webhook`;
    expect(connected).toMatchObject({ username: 'coffee_bot', webhookUrl });

    const setWebhook = fake.calls.find((c) => c.token === token && c.method === 'setWebhook');
    expect(setWebhook?.params.url).toBe(webhookUrl);
    const secret = setWebhook?.params.secret_token;
    expect(typeof secret === 'string' && /^[A-Za-z0-9_-]{32,256}$/.test(secret)).toBe(true);

    const row = await t.db
      .selectFrom('merchants')
      .select(['telegram_bot_token_enc', 'telegram_bot_username', 'telegram_webhook_secret'])
      .where('id', '=', merchant.id)
      .executeTakeFirstOrThrow();
    expect(row.telegram_bot_token_enc).toBeTruthy();
    expect(row.telegram_bot_token_enc).not.toContain(token);
    expect(row.telegram_bot_token_enc).not.toContain(token.split(':')[1]);
    expect(row.telegram_bot_username).toBe('coffee_bot');
    expect(row.telegram_webhook_secret).not.toBe(secret);
    expect(await getMerchantBotToken(t.db, box, merchant.id)).toBe(token);

    expect(await verifyMerchantBotSecret(t.db, { merchantId: merchant.id, secret: String(secret) })).toBe(
      true,
    );
    expect(await verifyMerchantBotSecret(t.db, { merchantId: merchant.id, secret: 'wrong' })).toBe(false);
    expect(await verifyMerchantBotSecret(t.db, { merchantId: merchant.id, secret: undefined })).toBe(false);
  });

  it('skips the webhook without a public API URL, and a merchant without a bot has no token', async () => {
    const merchant = await createMerchant(t.db, { name: 'No webhook' });
    expect(await getMerchantBotToken(t.db, box, merchant.id)).toBeNull();
    const token = fake.createBot();
    const connected = await connectMerchantBot(t.db, {
      merchantId: merchant.id,
      token,
      apiBaseUrl: fake.baseUrl,
      box,
    });
    expect(connected.webhookUrl).toBeNull();
    expect(fake.calls.filter((c) => c.token === token).map((c) => c.method)).toEqual(['getMe']);
    expect(await getMerchantBotToken(t.db, box, merchant.id)).toBe(token);
  });

  it('refuses a token Telegram rejects, or one that cannot be a token, with a validation error', async () => {
    const merchant = await createMerchant(t.db, { name: 'Bad token' });
    for (const token of ['987654321:AAHnotARealBotTokenAtAll_xyz', 'hello world']) {
      const error = await connectMerchantBot(t.db, {
        merchantId: merchant.id,
        token,
        apiBaseUrl: fake.baseUrl,
        box,
      })
        .then(() => null)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AppError);
      expect(error).toMatchObject({ code: 'validation_error', status: 400 });
      expect((error as AppError).message).toMatch(/^token: /);
      expect((error as AppError).message).not.toContain(token);
    }
    expect(await getMerchantBotToken(t.db, box, merchant.id)).toBeNull();
  });
});

function startUpdate(
  chatId: number,
  text: string,
  extra: Partial<NonNullable<NotifyBotUpdate['message']>> = {},
) {
  return {
    update_id: Math.floor(Math.random() * 1e9),
    message: { text, chat: { id: chatId, type: 'private' }, from: { username: 'staff' }, ...extra },
  };
}

async function handle(update: NotifyBotUpdate) {
  const replies: Array<{ chatId: string; text: string }> = [];
  const outcome = await handleNotifyBotUpdate(t.db, {
    update,
    sendReply: (chatId, text) => {
      replies.push({ chatId, text });
    },
  });
  return { outcome, replies };
}

describe('staff chat links', () => {
  it('links a private chat with a one-time token, once', async () => {
    const merchant = await createMerchant(t.db, { name: 'Пекарня' });
    const { token, expiresAt } = await createStaffLinkToken(t.db, { merchantId: merchant.id });
    expect(expiresAt.getTime() - Date.now()).toBeGreaterThan(86_000_000);
    const stored = await t.db.selectFrom('staff_telegram_links').select('token_hash').execute();
    expect(stored.map((r) => r.token_hash)).not.toContain(token);

    const first = await handle(startUpdate(5001, `/start ${token}`));
    expect(first.outcome).toEqual({ action: 'linked', merchantId: merchant.id, chatId: '5001' });
    expect(first.replies).toEqual([{ chatId: '5001', text: expect.stringContaining('«Пекарня»') }]);
    expect(first.replies[0]?.text).toMatch(/^Готово!/);
    expect(await listStaffChats(t.db, merchant.id)).toEqual(['5001']);

    // The token is spent: another chat cannot use it; the same chat is told it is linked.
    const stolen = await handle(startUpdate(5002, `/start ${token}`));
    expect(stolen.outcome).toEqual({ action: 'invalid_token', chatId: '5002' });
    expect(stolen.replies[0]?.text).toContain('недействительна');
    const again = await handle(startUpdate(5001, `/start@notify_bot ${token}`));
    expect(again.outcome).toMatchObject({ action: 'already_linked' });
    expect(await listStaffChats(t.db, merchant.id)).toEqual(['5001']);
  });

  it('answers an expired token politely and links nothing', async () => {
    const merchant = await createMerchant(t.db, { name: 'Expired' });
    const { token } = await createStaffLinkToken(t.db, { merchantId: merchant.id, ttlSeconds: 60 });
    await t.db
      .updateTable('staff_telegram_links')
      .set({ token_expires_at: new Date(Date.now() - 1_000) })
      .where('merchant_id', '=', merchant.id)
      .execute();
    const { outcome, replies } = await handle(startUpdate(5101, `/start ${token}`));
    expect(outcome).toEqual({ action: 'expired_token', chatId: '5101' });
    expect(replies[0]?.text).toContain('Срок действия ссылки истёк');
    expect(await listStaffChats(t.db, merchant.id)).toEqual([]);
  });

  it('keeps one link when a chat is linked twice, and serves several merchants per chat', async () => {
    const merchant = await createMerchant(t.db, { name: 'Twice' });
    const other = await createMerchant(t.db, { name: 'Other' });
    const a = await createStaffLinkToken(t.db, { merchantId: merchant.id });
    const b = await createStaffLinkToken(t.db, { merchantId: merchant.id });
    const c = await createStaffLinkToken(t.db, { merchantId: other.id });
    expect((await handle(startUpdate(5201, `/start ${a.token}`))).outcome.action).toBe('linked');
    const second = await handle(startUpdate(5201, `/start ${b.token}`));
    expect(second.outcome.action).toBe('already_linked');
    expect(second.replies[0]?.text).toContain('уже подключён');
    expect(await listStaffChats(t.db, merchant.id)).toEqual(['5201']);
    // The second token was spent on that chat.
    expect((await handle(startUpdate(5202, `/start ${b.token}`))).outcome.action).toBe('invalid_token');
    expect((await handle(startUpdate(5201, `/start ${c.token}`))).outcome.action).toBe('linked');
    expect(await listStaffChats(t.db, other.id)).toEqual(['5201']);
  });

  it('helps in private chats, stays quiet in groups, and speaks English to English users', async () => {
    const help = await handle(startUpdate(5301, 'hello'));
    expect(help.outcome.action).toBe('help');
    expect(help.replies[0]?.text).toContain('бот уведомлений');
    const bare = await handle(startUpdate(5301, '/start'));
    expect(bare.outcome.action).toBe('help');

    const group = { id: -5302, type: 'supergroup' };
    expect((await handle(startUpdate(-5302, 'chatter', { chat: group }))).replies).toEqual([]);
    const groupStart = await handle(startUpdate(-5302, '/start sl_whatever', { chat: group }));
    expect(groupStart.outcome.action).toBe('private_only');

    const english = await handle(
      startUpdate(5303, '/start sl_unknown', { from: { language_code: 'en-US' } }),
    );
    expect(english.outcome.action).toBe('invalid_token');
    expect(english.replies[0]?.text).toContain('invalid or has already been used');

    expect((await handle({ update_id: 1 })).outcome).toEqual({ action: 'ignored' });
  });
});

describe('POST /telegram/notify/webhook', () => {
  let app: FastifyInstance;
  let bare: FastifyInstance;
  let notifyToken: string;
  const secret = 'notify-secret_123';

  async function build(config: Config): Promise<FastifyInstance> {
    const instance = Fastify({ logger: false });
    instance.setValidatorCompiler(validatorCompiler);
    instance.setSerializerCompiler(serializerCompiler);
    registerErrorHandler(instance);
    await instance.register(telegramRoutes({ db: t.db, config }));
    await instance.ready();
    return instance;
  }

  beforeAll(async () => {
    notifyToken = fake.createBot('platform_notify_bot');
    const env = { NODE_ENV: 'test', TELEGRAM_API_BASE_URL: fake.baseUrl };
    app = await build(
      loadConfig({ ...env, TELEGRAM_NOTIFY_BOT_TOKEN: notifyToken, TELEGRAM_NOTIFY_WEBHOOK_SECRET: secret })
        .config,
    );
    bare = await build(loadConfig(env).config);
  });
  afterAll(async () => {
    await Promise.all([app.close(), bare.close()]);
  });

  function post(instance: FastifyInstance, payload: unknown, headers: Record<string, string> = {}) {
    return instance.inject({
      method: 'POST',
      url: '/telegram/notify/webhook',
      payload: payload as object,
      headers,
    });
  }

  it('answers 401 without the secret header or with a wrong one, before looking at the body', async () => {
    const update = startUpdate(6001, '/start x');
    expect((await post(app, update)).statusCode).toBe(401);
    const wrong = await post(app, update, { 'x-telegram-bot-api-secret-token': 'nope' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe('unauthorized');
    expect((await post(app, { junk: true }, { 'x-telegram-bot-api-secret-token': 'nope' })).statusCode).toBe(
      401,
    );
  });

  it('answers 404 when the notify bot is not configured', async () => {
    const res = await post(bare, startUpdate(6002, '/start x'), {
      'x-telegram-bot-api-secret-token': secret,
    });
    expect(res.statusCode).toBe(404);
  });

  it('rejects an update that is not one with 400', async () => {
    const res = await post(app, { message: 'x' }, { 'x-telegram-bot-api-secret-token': secret });
    expect(res.statusCode).toBe(400);
  });

  it('links the chat on /start <token> and replies through the Bot API', async () => {
    const merchant = await createMerchant(t.db, { name: 'Webhook shop' });
    const { token } = await createStaffLinkToken(t.db, { merchantId: merchant.id });
    const res = await post(app, startUpdate(6003, `/start ${token}`), {
      'x-telegram-bot-api-secret-token': secret,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: true });
    expect(await listStaffChats(t.db, merchant.id)).toEqual(['6003']);
    const reply = await fake.waitForCall(
      (c) => c.token === notifyToken && c.method === 'sendMessage' && String(c.params.chat_id) === '6003',
    );
    expect(reply.status).toBe(200);
    expect(String(reply.params.text)).toContain('«Webhook shop»');
  });
});

describe('registerNotifyWebhook', () => {
  const base = { TELEGRAM_NOTIFY_WEBHOOK_SECRET: 'hook-secret' };

  it('registers the notify bot at API_BASE_URL with the secret', async () => {
    const token = fake.createBot();
    const result = await registerNotifyWebhook({
      ...base,
      API_BASE_URL: 'https://api.loyalty.example/',
      TELEGRAM_API_BASE_URL: fake.baseUrl,
      TELEGRAM_NOTIFY_BOT_TOKEN: token,
    });
    expect(result.url).toBe('https://api.loyalty.example/telegram/notify/webhook');
    const call = fake.calls.find((c) => c.token === token && c.method === 'setWebhook');
    expect(call?.params).toMatchObject({ url: result.url, secret_token: 'hook-secret' });
  });

  it('names what is missing, and reports a refusal without the token', async () => {
    await expect(
      registerNotifyWebhook({
        ...base,
        API_BASE_URL: undefined,
        TELEGRAM_API_BASE_URL: fake.baseUrl,
        TELEGRAM_NOTIFY_BOT_TOKEN: fake.createBot(),
      }),
    ).rejects.toThrow(/API_BASE_URL/);
    await expect(
      registerNotifyWebhook({
        ...base,
        API_BASE_URL: 'https://x.example',
        TELEGRAM_API_BASE_URL: fake.baseUrl,
        TELEGRAM_NOTIFY_BOT_TOKEN: undefined,
      }),
    ).rejects.toThrow(/TELEGRAM_NOTIFY_BOT_TOKEN/);
    const unknown = '55555555:AAHthisBotDoesNotExistAnywhere_1';
    const error = await registerNotifyWebhook({
      ...base,
      API_BASE_URL: 'https://x.example',
      TELEGRAM_API_BASE_URL: fake.baseUrl,
      TELEGRAM_NOTIFY_BOT_TOKEN: unknown,
    }).catch((e: unknown) => e);
    expect(String(error)).toContain('401');
    expect(String(error)).not.toContain(unknown);
  });
});

describe('messages', () => {
  it('formats money in roubles with a thin thousands separator (ru) and English style (en)', () => {
    expect(formatMoney(123_450)).toBe(`1${NARROW}234,50${NBSP}₽`);
    expect(formatMoney(123_450, 'en')).toBe('₽1,234.50');
    expect(formatMoney(5)).toBe(`0,05${NBSP}₽`);
    expect(formatMoney(100_000_000)).toBe(`1${NARROW}000${NARROW}000,00${NBSP}₽`);
    expect(formatMoney(100_000_000, 'en')).toBe('₽1,000,000.00');
    expect(formatMoney(99_999, 'en')).toBe('₽999.99');
    expect(formatMoney(-1_050)).toBe(`-10,50${NBSP}₽`);
  });

  it('declines points in Russian and English', () => {
    const ru = [1, 2, 5, 11, 21, 22, 25, 111, 1_500].map((n) => formatPoints(n));
    expect(ru).toEqual(
      [
        '1 балл',
        '2 балла',
        '5 баллов',
        '11 баллов',
        '21 балл',
        '22 балла',
        '25 баллов',
        '111 баллов',
        '1 500 баллов',
      ].map((s) => s.replace(/^(\d+) (\d+)/, `$1${NARROW}$2`).replace(/ /g, NBSP)),
    );
    expect([0, 1, 2, 1_500].map((n) => formatPoints(n, 'en'))).toEqual([
      '0 points',
      '1 point',
      '2 points',
      '1,500 points',
    ]);
    expect(normalizeLocale('en-GB')).toBe('en');
    expect(normalizeLocale('uk')).toBe('ru');
    expect(normalizeLocale(undefined)).toBe('ru');
  });

  const balance = { available: 1_340, pending: 0 };
  const plain = (s: string | null) => s?.replace(/[\u00a0\u202f]/g, ' ');

  it('tells a customer what a purchase earned and spent', () => {
    const payload = { total: 123_450, earnedPoints: 40, redeemedPoints: 200, pendingPoints: 0, balance };
    expect(plain(formatCustomerNotification('purchase.committed', payload, 'ru'))).toBe(
      'Покупка на 1 234,50 ₽\nСписано: 200 баллов\nНачислено: 40 баллов\nБаланс: 1 340 баллов',
    );
    expect(formatCustomerNotification('purchase.committed', payload, 'en')).toBe(
      'Purchase of ₽1,234.50\nSpent: 200 points\nEarned: 40 points\nBalance: 1,340 points',
    );
    const pending = {
      ...payload,
      redeemedPoints: 0,
      pendingPoints: 40,
      balance: { available: 0, pending: 40 },
    };
    expect(plain(formatCustomerNotification('purchase.committed', pending))).toBe(
      'Покупка на 1 234,50 ₽\nНачислено: 40 баллов (станут доступны позже)\n' +
        'Баланс: 0 баллов (ещё 40 баллов скоро станут доступны)',
    );
    expect(
      formatCustomerNotification('purchase.committed', { ...payload, earnedPoints: 0, redeemedPoints: 0 }),
    ).toBe(null);
  });

  it('explains a purchase with campaign points line by line', () => {
    const payload = {
      total: 100_000,
      earnedPoints: 80,
      redeemedPoints: 0,
      balance,
      earnBreakdown: [
        { source: 'base', campaignId: null, name: 'Base', points: 50 },
        { source: 'campaign', campaignId: '00000000-0000-4000-8000-000000000001', name: 'Бонус', points: 30 },
      ],
    };
    expect(plain(formatCustomerNotification('purchase.committed', payload, 'ru'))).toBe(
      'Покупка на 1 000,00 ₽\nНачислено: 80 баллов\n  · базовые: +50 баллов\n  · Бонус: +30 баллов\nБаланс: 1 340 баллов',
    );
    expect(formatCustomerNotification('purchase.committed', payload, 'en')).toBe(
      'Purchase of ₽1,000.00\nEarned: 80 points\n  · base: +50 points\n  · Бонус: +30 points\nBalance: 1,340 points',
    );
    // Without campaign points the message stays as it was.
    const plainEarn = { ...payload, earnedPoints: 50, earnBreakdown: payload.earnBreakdown.slice(0, 1) };
    expect(formatCustomerNotification('purchase.committed', plainEarn, 'en')).toBe(
      'Purchase of ₽1,000.00\nEarned: 50 points\nBalance: 1,340 points',
    );
  });

  it('has a text for every customer event type in both languages', () => {
    const cases: Array<[string, Record<string, unknown>, string, string]> = [
      [
        'purchase.refunded',
        { amount: 50_000, returnedPoints: 100, revokedPoints: 20, balance },
        'Возврат на 500,00 ₽\nВозвращено: 100 баллов\nОтменено начисление: 20 баллов\nБаланс: 1 340 баллов',
        'Refund of ₽500.00\nReturned to you: 100 points\nEarned points cancelled: 20 points\nBalance: 1,340 points',
      ],
      [
        'points.expired',
        { points: 3, balance },
        'Сгорело: 3 балла — срок их действия истёк.\nБаланс: 1 340 баллов',
        '3 points expired.\nBalance: 1,340 points',
      ],
      [
        'points.activated',
        { points: 21, balance },
        'Стали доступны: 21 балл. Их можно тратить.\nБаланс: 1 340 баллов',
        'Now available to spend: 21 points.\nBalance: 1,340 points',
      ],
      [
        'points.adjusted',
        { points: 50, reason: 'internal note', balance },
        'Вам начислено: 50 баллов.\nБаланс: 1 340 баллов',
        'You received 50 points.\nBalance: 1,340 points',
      ],
      [
        'points.adjusted',
        { points: -50, reason: 'internal note', balance },
        'Списано: 50 баллов.\nБаланс: 1 340 баллов',
        '50 points deducted.\nBalance: 1,340 points',
      ],
      [
        'points.expiring',
        { points: 120, expiresAt: '2026-03-15T20:59:59.000Z' },
        '120 баллов сгорят 15 марта 2026 г. — успейте потратить!',
        '120 points will expire on 15 March 2026. Use them before then!',
      ],
    ];
    for (const [type, payload, ru, en] of cases) {
      expect(plain(formatCustomerNotification(type, payload, 'ru')), type).toBe(ru);
      expect(plain(formatCustomerNotification(type, payload, 'en')), type).toBe(en);
    }
    expect(formatCustomerNotification('customer.created', { customerId: 'x' }, 'ru')).toBeNull();
    expect(() => formatCustomerNotification('points.expired', { points: 'many' }, 'ru')).toThrow();
  });

  it('has staff texts for large purchases, daily summaries and failing webhooks', () => {
    const large = { merchantName: 'Кофейня', orderId: 'A-17', total: 2_500_000, earnedPoints: 1_250 };
    expect(plain(formatStaffNotification('large_purchase', large))).toBe(
      'Кофейня: крупная покупка 25 000,00 ₽\nЗаказ: A-17\nНачислено: 1 250 баллов, списано: 0 баллов',
    );
    expect(formatStaffNotification('large_purchase', large, 'en')).toBe(
      'Кофейня: large purchase ₽25,000.00\nOrder: A-17\nEarned: 1,250 points, redeemed: 0 points',
    );
    const summary = {
      date: '2026-03-01',
      purchases: 42,
      revenue: 1_234_550,
      pointsEarned: 600,
      pointsRedeemed: 150,
    };
    expect(plain(formatStaffNotification('daily_summary', summary))).toBe(
      'Итоги за 1 марта 2026 г.\nПокупок: 42\nВыручка: 12 345,50 ₽\nНачислено баллов: 600\n' +
        'Списано баллов: 150',
    );
    expect(formatStaffNotification('daily_summary', summary, 'en')).toBe(
      'Summary for 1 March 2026\nPurchases: 42\nRevenue: ₽12,345.50\nPoints earned: 600\n' +
        'Points redeemed: 150',
    );
    const failing = { url: 'https://shop.example/hooks', lastError: '503 Service Unavailable', failures: 5 };
    expect(formatStaffNotification('webhook_failing', failing)).toBe(
      'Вебхук не отвечает (неудачных попыток подряд: 5)\nURL: https://shop.example/hooks\n' +
        'Последняя ошибка: 503 Service Unavailable\nПроверьте адрес и работу сервера: доставка событий будет повторяться.',
    );
    expect(formatStaffNotification('webhook_failing', { ...failing, merchantName: 'Shop' }, 'en')).toBe(
      'Shop: webhook endpoint failing (5 failed attempts in a row)\nURL: https://shop.example/hooks\n' +
        'Last error: 503 Service Unavailable\nCheck the URL and the receiving server: delivery will be retried.',
    );
  });
});
