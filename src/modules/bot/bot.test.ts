import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeTelegram,
  type FakeTelegramCall,
  type FakeTelegramFile,
  startFakeTelegram,
} from '../../../test/fakes/telegram-bot-api.js';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCampaign,
  createTestMerchant,
  nextPhone,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { SecretBox } from '../../lib/crypto.js';
import { createCustomer, registerTelegramCustomer } from '../customers/customers.service.js';
import { adjustPoints } from '../ledger/ledger.service.js';
import { updateMerchant } from '../merchants/merchants.service.js';
import { formatPoints } from '../telegram/telegram.messages.js';
import { connectMerchantBot } from '../telegram/telegram.service.js';
import { MENU_LABELS } from './bot.messages.js';

const API_BASE_URL = 'https://loyalty.example.com';

let fake: FakeTelegram;
let t: TestApp;
let merchant: TestMerchant;
let botToken: string;
let secret: string;
let updateId = 1;
let nextUserId = 9_100_001;

beforeAll(async () => {
  fake = await startFakeTelegram();
  t = await createTestApp({ env: { TELEGRAM_API_BASE_URL: fake.baseUrl, API_BASE_URL } });
  merchant = await createTestMerchant(t.db, { name: 'Кофейня «Зерно»' });
  botToken = fake.createBot('zerno_bot');
  await connectMerchantBot(t.db, {
    merchantId: merchant.merchantId,
    token: botToken,
    apiBaseUrl: fake.baseUrl,
    apiBaseUrlForWebhook: API_BASE_URL,
    box: new SecretBox(t.config.APP_ENCRYPTION_KEY),
  });
  // The secret our server gave Telegram with setWebhook: what Telegram presents on every update.
  const webhook = fake.webhookOf(botToken);
  if (!webhook?.secret) throw new Error('setWebhook was not called with a secret');
  expect(webhook.url).toBe(`${API_BASE_URL}/telegram/bots/${merchant.merchantId}/webhook`);
  secret = webhook.secret;
});
afterAll(async () => {
  await t.close();
  await fake.close();
});

interface TestUser {
  id: number;
  first_name: string;
  last_name?: string;
  language_code?: string;
}

function newUser(overrides: Partial<TestUser> = {}): TestUser {
  return { id: nextUserId++, first_name: 'Анна', last_name: 'Иванова', language_code: 'ru', ...overrides };
}

function messageUpdate(user: TestUser, fields: Record<string, unknown>, chatType = 'private') {
  const id = updateId++;
  return {
    update_id: id,
    message: {
      message_id: id,
      date: Math.floor(Date.now() / 1000),
      chat:
        chatType === 'private'
          ? { id: user.id, type: 'private', first_name: user.first_name }
          : { id: -100_500, type: chatType, title: 'Group' },
      from: { is_bot: false, ...user },
      ...fields,
    },
  };
}

const textUpdate = (user: TestUser, text: string) =>
  messageUpdate(user, {
    text,
    ...(text.startsWith('/')
      ? { entities: [{ type: 'bot_command', offset: 0, length: text.split(' ')[0]?.length }] }
      : {}),
  });

const contactUpdate = (user: TestUser, contact: { phone: string; userId?: number }) =>
  messageUpdate(user, {
    contact: {
      phone_number: contact.phone,
      first_name: user.first_name,
      ...(contact.userId === undefined ? {} : { user_id: contact.userId }),
    },
  });

function postUpdate(update: object, options: { secret?: string | null; merchantId?: string } = {}) {
  const presented = options.secret === undefined ? secret : options.secret;
  return t.app.inject({
    method: 'POST',
    url: `/telegram/bots/${options.merchantId ?? merchant.merchantId}/webhook`,
    headers: presented === null ? {} : { 'x-telegram-bot-api-secret-token': presented },
    payload: update,
  });
}

/** Posts an update (accepted with 200) and waits for the bot's call `method` to the user's chat. */
async function send(update: object, chatId: number, method = 'sendMessage'): Promise<FakeTelegramCall> {
  const since = fake.calls.length;
  const res = await postUpdate(update);
  expect(res.statusCode).toBe(200);
  return fake.waitForCall(
    (c) =>
      fake.calls.indexOf(c) >= since &&
      c.token === botToken &&
      c.method === method &&
      String(c.params.chat_id) === String(chatId),
  );
}

/** The texts of the reply keyboard's buttons, row by row. */
function keyboardOf(call: FakeTelegramCall): Array<Array<{ text: string; request_contact?: boolean }>> {
  const markup = call.params.reply_markup as { keyboard?: Array<Array<{ text: string }>> } | undefined;
  return markup?.keyboard ?? [];
}

async function customersOfUser(telegramUserId: number) {
  return t.db
    .selectFrom('customers')
    .select(['id', 'phone', 'name', 'telegram_user_id'])
    .where('merchant_id', '=', merchant.merchantId)
    .where('telegram_user_id', '=', telegramUserId)
    .execute();
}

/** A user who has shared their phone: a customer linked to the Telegram user. */
async function registeredUser(overrides: Partial<TestUser> = {}) {
  const user = newUser(overrides);
  const phone = nextPhone();
  await send(contactUpdate(user, { phone: phone.slice(1), userId: user.id }), user.id);
  const [customer] = await customersOfUser(user.id);
  if (!customer) throw new Error('registration failed');
  return { user, phone, customerId: customer.id };
}

describe('merchant bot webhook', () => {
  it('answers 401 without the secret or with a wrong one, and the bot says nothing', async () => {
    const user = newUser();
    const before = fake.calls.length;
    const missing = await postUpdate(textUpdate(user, '/start'), { secret: null });
    expect(missing.statusCode).toBe(401);
    expect(missing.json().error.code).toBe('unauthorized');
    const wrong = await postUpdate(textUpdate(user, '/start'), { secret: 'not-the-secret' });
    expect(wrong.statusCode).toBe(401);
    expect(fake.calls.slice(before).filter((c) => c.token === botToken)).toEqual([]);
  });

  it('answers 404 for a merchant without a bot and for an id that is no merchant', async () => {
    const bare = await createTestMerchant(t.db);
    for (const merchantId of [bare.merchantId, randomUUID(), 'not-a-uuid']) {
      const res = await postUpdate(textUpdate(newUser(), '/start'), { merchantId });
      expect(res.statusCode).toBe(404);
      expect(res.json().error.code).toBe('bot_not_connected');
    }
  });

  it('/start greets with the merchant name and asks for the phone with a contact button', async () => {
    const user = newUser();
    const call = await send(textUpdate(user, '/start'), user.id);
    expect(String(call.params.text)).toContain('Кофейня «Зерно»');
    expect(String(call.params.text)).toContain('номер');
    expect(keyboardOf(call)).toEqual([[{ text: '📱 Поделиться номером', request_contact: true }]]);
  });

  it('speaks English to a user whose Telegram is in English', async () => {
    const user = newUser({ language_code: 'en-GB', first_name: 'Ann' });
    const call = await send(textUpdate(user, '/start'), user.id);
    expect(String(call.params.text)).toMatch(/^Hello! This is the loyalty programme of "Кофейня «Зерно»"/);
    expect(keyboardOf(call)[0]?.[0]).toEqual({ text: '📱 Share my phone number', request_contact: true });
  });

  it('registers a new customer from the shared contact and shows the menu', async () => {
    const user = newUser();
    const phone = nextPhone();
    // Telegram sends the number without "+".
    const call = await send(contactUpdate(user, { phone: phone.slice(1), userId: user.id }), user.id);
    expect(String(call.params.text)).toContain('Вы участник программы «Кофейня «Зерно»»');
    expect(
      keyboardOf(call)
        .flat()
        .map((b) => b.text),
    ).toEqual(['Баланс', 'Мой код', 'История', 'Акции', 'Открыть приложение', 'Пригласить друга']);
    expect(await customersOfUser(user.id)).toEqual([
      expect.objectContaining({ phone, name: 'Анна Иванова', telegram_user_id: user.id }),
    ]);
    // The chat's menu button opens the Mini App (with initData, unlike a reply-keyboard button).
    const menuButton = await fake.waitForCall(
      (c) => c.method === 'setChatMenuButton' && String(c.params.chat_id) === String(user.id),
    );
    expect(menuButton.params.menu_button).toEqual({
      type: 'web_app',
      text: 'Открыть приложение',
      web_app: { url: `${API_BASE_URL}/miniapp?m=${merchant.merchantId}` },
    });
  });

  it('links the customer the till already knows by phone instead of creating another', async () => {
    const phone = nextPhone();
    const existing = await createCustomer(t.db, { merchantId: merchant.merchantId, phone, name: 'Из кассы' });
    const user = newUser();
    const call = await send(contactUpdate(user, { phone: phone.slice(1), userId: user.id }), user.id);
    expect(String(call.params.text)).toContain('нашли ваш счёт');
    expect(await customersOfUser(user.id)).toEqual([
      { id: existing.id, phone, name: 'Из кассы', telegram_user_id: user.id },
    ]);
    const count = await t.db
      .selectFrom('customers')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('merchant_id', '=', merchant.merchantId)
      .where('phone', '=', phone)
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
    // And the till, looking the phone up, finds that same customer.
    const resolved = await t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers: { 'x-api-key': merchant.apiKey },
      payload: { phone: `8${phone.slice(2)}` },
    });
    expect(resolved.json().customer.id).toBe(existing.id);
  });

  it("refuses someone else's contact and registers nobody", async () => {
    const user = newUser();
    const friend = newUser();
    const call = await send(contactUpdate(user, { phone: nextPhone(), userId: friend.id }), user.id);
    expect(String(call.params.text)).toContain('не ваш контакт');
    expect(keyboardOf(call)[0]?.[0]?.request_contact).toBe(true);
    const card = await send(contactUpdate(user, { phone: nextPhone() }), user.id);
    expect(String(card.params.text)).toContain('не ваш контакт');
    expect(await customersOfUser(user.id)).toEqual([]);
  });

  it('keeps a registered user on their customer when they share another number', async () => {
    const { user, phone, customerId } = await registeredUser();
    const call = await send(contactUpdate(user, { phone: nextPhone(), userId: user.id }), user.id);
    expect(String(call.params.text)).toContain(`Вы уже зарегистрированы с номером ${phone}`);
    expect(await customersOfUser(user.id)).toEqual([expect.objectContaining({ id: customerId, phone })]);
  });

  it('registers one customer when the same contact arrives twice at once', async () => {
    const user = newUser();
    const phone = nextPhone();
    const outcomes = await Promise.all(
      [0, 1].map(() =>
        registerTelegramCustomer(t.db, {
          merchantId: merchant.merchantId,
          phone,
          telegramUserId: user.id,
          name: 'Анна',
        }),
      ),
    );
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['already_registered', 'created']);
    expect(new Set(outcomes.map((o) => o.customer.id)).size).toBe(1);
    expect(await customersOfUser(user.id)).toHaveLength(1);
  });

  it('/start of a registered user greets and shows the menu, not the phone request', async () => {
    const { user } = await registeredUser();
    const call = await send(textUpdate(user, '/start'), user.id);
    expect(String(call.params.text)).toContain('Кофейня «Зерно»');
    expect(keyboardOf(call)[0]?.map((b) => b.text)).toEqual(['Баланс', 'Мой код']);
  });

  it('"Мой код" sends the 6 digits and a QR image; the till resolves the code to the customer', async () => {
    const { user, customerId } = await registeredUser();
    const since = fake.calls.length;
    const message = await send(textUpdate(user, MENU_LABELS.ru.code), user.id);
    const code = /\b(\d{6})\b/.exec(String(message.params.text))?.[1];
    expect(code).toBeDefined();
    expect(String(message.params.text)).toContain('5 минут');
    const photoCall = await fake.waitForCall(
      (c) =>
        fake.calls.indexOf(c) >= since &&
        c.method === 'sendPhoto' &&
        String(c.params.chat_id) === String(user.id),
    );
    expect(photoCall.status).toBe(200);
    const photo = photoCall.params.photo as FakeTelegramFile;
    expect(photo.data.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(String(photoCall.params.caption)).toContain(String(code));

    const resolved = await t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers: { 'x-api-key': merchant.apiKey },
      payload: { code },
    });
    expect(resolved.statusCode).toBe(200);
    expect(resolved.json().customer.id).toBe(customerId);
  });

  it('"Баланс" shows the available points and the point value', async () => {
    const { user, customerId } = await registeredUser();
    await adjustPoints(t.db, {
      merchantId: merchant.merchantId,
      customerId,
      points: 1500,
      reason: 'welcome',
      rules: merchant.rules,
    });
    const call = await send(textUpdate(user, 'Баланс'), user.id);
    const text = String(call.params.text);
    expect(text).toContain(`Баланс: ${formatPoints(1500)}`);
    expect(text).toContain('1 балл = 1,00');
    const en = await send(textUpdate({ ...user, language_code: 'en' }, 'Balance'), user.id);
    expect(String(en.params.text)).toContain('Balance: 1,500 points');
  });

  it('"История" lists the latest ledger entries with their order', async () => {
    const { user, customerId } = await registeredUser();
    const empty = await send(textUpdate(user, 'История'), user.id);
    expect(String(empty.params.text)).toContain('Операций с баллами пока нет');
    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 20_000, orderId: 'A-77' });
    const call = await send(textUpdate(user, 'История'), user.id);
    const text = String(call.params.text);
    expect(text).toContain('Последние операции:');
    expect(text).toContain(`+${formatPoints(10)}`);
    expect(text).toContain('заказ A-77');
  });

  it('"Акции" and /offers list the offers the customer can get, in their language', async () => {
    const { user } = await registeredUser();
    const empty = await send(textUpdate(user, 'Акции'), user.id);
    expect(String(empty.params.text)).toBe('Сейчас акций нет.');
    const [campaign] = await t.db
      .insertInto('campaigns')
      .values({
        merchant_id: merchant.merchantId,
        name: 'Кофе x2',
        kind: 'multiplier',
        status: 'active',
        effect: JSON.stringify({ multiplierBp: 20_000 }),
        conditions: JSON.stringify({ categories: ['кофе'] }),
        ends_at: new Date('2099-03-08T12:00:00Z'),
      })
      .returning('id')
      .execute();
    try {
      const call = await send(textUpdate(user, 'Акции'), user.id);
      expect(String(call.params.text)).toBe(
        'Акции:\n• Кофе x2: ×2 баллов за покупку (кофе) (действует сейчас, до 8 марта)',
      );
      const en = await send(textUpdate({ ...user, language_code: 'en' }, '/offers'), user.id);
      expect(String(en.params.text)).toBe(
        'Offers:\n• Кофе x2: x2 points on a purchase (кофе) (on now, until 8 March)',
      );
    } finally {
      await t.db
        .deleteFrom('campaigns')
        .where('id', '=', campaign?.id ?? '')
        .execute();
    }
  });

  it('"Открыть приложение" answers with an inline web_app button to the Mini App', async () => {
    const { user } = await registeredUser();
    const call = await send(textUpdate(user, 'Открыть приложение'), user.id);
    expect(call.params.reply_markup).toEqual({
      inline_keyboard: [
        [
          {
            text: 'Открыть приложение',
            web_app: { url: `${API_BASE_URL}/miniapp?m=${merchant.merchantId}` },
          },
        ],
      ],
    });
  });

  it('answers other text with a short help, and asks an unregistered user for the phone', async () => {
    const { user } = await registeredUser();
    const help = await send(textUpdate(user, 'привет'), user.id);
    expect(String(help.params.text)).toContain('меню');
    expect(keyboardOf(help).length).toBeGreaterThan(0);
    const stranger = newUser();
    const ask = await send(textUpdate(stranger, 'Баланс'), stranger.id);
    expect(String(ask.params.text)).toContain('поделитесь номером');
    expect(keyboardOf(ask)[0]?.[0]?.request_contact).toBe(true);
  });

  it('stays quiet in group chats', async () => {
    const user = newUser();
    const before = fake.calls.length;
    const res = await postUpdate(messageUpdate(user, { text: 'Баланс' }, 'supergroup'));
    expect(res.statusCode).toBe(200);
    // A private message sent afterwards is answered; nothing was sent for the group one before it.
    const reply = await send(textUpdate(user, '/start'), user.id);
    expect(reply.method).toBe('sendMessage');
    const groupCalls = fake.calls.slice(before).filter((c) => String(c.params.chat_id) === '-100500');
    expect(groupCalls).toEqual([]);
  });

  it("refuses updates for a suspended merchant's bot with 403 merchant_suspended, sending nothing", async () => {
    const { user } = await registeredUser();
    await updateMerchant(t.db, { merchantId: merchant.merchantId, status: 'suspended' });
    try {
      const before = fake.calls.length;
      const res = await postUpdate(textUpdate(user, 'Баланс'));
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('merchant_suspended');
      // A wrong secret is still 401: the state of a merchant is told only to Telegram.
      expect((await postUpdate(textUpdate(user, 'Баланс'), { secret: 'wrong' })).statusCode).toBe(401);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(fake.calls.slice(before).filter((c) => String(c.params.chat_id) === String(user.id))).toEqual(
        [],
      );
    } finally {
      await updateMerchant(t.db, { merchantId: merchant.merchantId, status: 'active' });
    }
    expect((await send(textUpdate(user, 'Баланс'), user.id)).method).toBe('sendMessage');
  });
});

describe('joining through the bot with campaigns', () => {
  async function balanceOf(customerId: string) {
    return t.db
      .selectFrom('balances')
      .select(['available', 'pending'])
      .where('customer_id', '=', customerId)
      .executeTakeFirstOrThrow();
  }

  async function endCampaign(id: string) {
    await t.db.updateTable('campaigns').set({ status: 'ended' }).where('id', '=', id).execute();
  }

  it('grants the welcome bonus on sign-up, once, with a customer.enrolled event from the bot', async () => {
    const welcome = await createTestCampaign(t.db, merchant, { kind: 'welcome', effect: { points: 250 } });
    try {
      const { user, customerId } = await registeredUser();
      expect(await balanceOf(customerId)).toEqual({ available: 250, pending: 0 });
      // Sharing the contact again changes nothing.
      await send(contactUpdate(user, { phone: nextPhone().slice(1), userId: user.id }), user.id);
      expect(await balanceOf(customerId)).toEqual({ available: 250, pending: 0 });
      const events = await t.db
        .selectFrom('outbox_events')
        .select('payload')
        .where('type', '=', 'customer.enrolled')
        .where(sql<boolean>`payload->>'customerId' = ${customerId}`)
        .execute();
      expect(events.map((e) => e.payload)).toEqual([
        expect.objectContaining({
          source: 'bot',
          welcomePoints: 250,
          balance: { available: 250, pending: 0, held: 0 },
        }),
      ]);
    } finally {
      await endCampaign(welcome.id);
    }
  });

  it('shows the referral link, and a friend starting with it is referred on joining', async () => {
    const referral = await createTestCampaign(t.db, merchant, {
      kind: 'referral',
      effect: { referrerPoints: 70, refereePoints: 30 },
    });
    try {
      const { user, customerId } = await registeredUser();
      const { referral_code: code } = await t.db
        .selectFrom('customers')
        .select('referral_code')
        .where('id', '=', customerId)
        .executeTakeFirstOrThrow();
      const invite = await send(textUpdate(user, 'Пригласить друга'), user.id);
      const link = `https://t.me/zerno_bot?start=ref_${code}`;
      expect(String(invite.params.text)).toContain(link);
      expect(String(invite.params.text)).toContain(code);
      const english = await send(textUpdate({ ...user, language_code: 'en' }, '/invite'), user.id);
      expect(String(english.params.text)).toContain('Invite a friend');

      // The friend opens the link (/start ref_<code>), then shares their phone.
      const friend = newUser({ first_name: 'Олег' });
      await send(textUpdate(friend, `/start ref_${code}`), friend.id);
      await send(contactUpdate(friend, { phone: nextPhone().slice(1), userId: friend.id }), friend.id);
      const [joined] = await customersOfUser(friend.id);
      if (!joined) throw new Error('the friend did not join');
      const { referred_by } = await t.db
        .selectFrom('customers')
        .select('referred_by')
        .where('id', '=', joined.id)
        .executeTakeFirstOrThrow();
      expect(referred_by).toBe(customerId);

      // Their own link does not refer a registered user to themselves.
      await send(textUpdate(user, `/start ref_${code}`), user.id);
      expect(await t.db.selectFrom('bot_referrals').selectAll().execute()).toEqual([]);

      await commitPurchaseViaApi(t.app, merchant, { customerId: joined.id, total: 1000 });
      expect((await balanceOf(customerId)).available).toBe(70);
    } finally {
      await endCampaign(referral.id);
    }
  });
});
