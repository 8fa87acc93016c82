import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/lib/crypto.js';
import { createCustomer } from '../../src/modules/customers/customers.service.js';
import { connectMerchantBot } from '../../src/modules/telegram/telegram.service.js';
import { type FakeTelegram, startFakeTelegram } from '../fakes/telegram-bot-api.js';
import { createTestMerchant, type TestMerchant } from '../helpers/factories.js';
import {
  ensureWebBuilt,
  hasChromium,
  integrationCall,
  launchBrowser,
  NO_CHROMIUM_REASON,
  newPage,
  screenshots,
  see,
  seeText,
  signInitData,
  startWebServer,
  type WebServer,
} from './helpers.js';

// The customer's Telegram Mini App in a real browser. The merchant's bot is connected through the fake
// Bot API (so its token is stored sealed, as in production); initData is signed with that token as
// Telegram signs it. A correct signature shows the balance and a code that resolves at the till; a
// forged one shows an error.

if (!hasChromium) console.warn(NO_CHROMIUM_REASON);

const TELEGRAM_USER = { id: 424_242, first_name: 'Мария', language_code: 'ru' };
const DARK_THEME = {
  bg_color: '#17212b',
  text_color: '#f5f5f5',
  hint_color: '#708499',
  link_color: '#6ab3f3',
  button_color: '#5288c1',
  button_text_color: '#ffffff',
  secondary_bg_color: '#232e3c',
};
const LIGHT_THEME = {
  bg_color: '#ffffff',
  text_color: '#000000',
  hint_color: '#999999',
  link_color: '#2481cc',
  button_color: '#2481cc',
  button_text_color: '#ffffff',
  secondary_bg_color: '#efeff3',
};

describe.skipIf(!hasChromium)('Telegram Mini App (browser)', () => {
  let server: WebServer;
  let browser: Browser;
  let telegram: FakeTelegram;
  let merchant: TestMerchant;
  let botToken: string;
  let customerId: string;

  beforeAll(async () => {
    await ensureWebBuilt();
    telegram = await startFakeTelegram();
    server = await startWebServer({ env: { TELEGRAM_API_BASE_URL: telegram.baseUrl } });
    browser = await launchBrowser();
    merchant = await createTestMerchant(server.db, {
      name: 'Кофейня «Зерно»',
      rules: {
        tiers: [
          { name: 'Серебро', minSpend: 500_000, earnRateBp: 700 },
          { name: 'Золото', minSpend: 1_500_000, earnRateBp: 1000 },
        ],
      },
    });
    botToken = telegram.createBot('zerno_coffee_bot');
    await connectMerchantBot(server.db, {
      merchantId: merchant.merchantId,
      token: botToken,
      apiBaseUrl: telegram.baseUrl,
      box: new SecretBox(server.config.APP_ENCRYPTION_KEY),
    });
    customerId = (
      await createCustomer(server.db, {
        merchantId: merchant.merchantId,
        phone: '+79995550202',
        name: 'Мария',
        telegramUserId: TELEGRAM_USER.id,
      })
    ).id;
    // 2 000,00 ₽ at the default 5% earns 100 points.
    const purchase = await integrationCall(
      server.baseUrl,
      merchant.apiKey,
      '/purchases',
      {
        customer: { customerId },
        receipt: { total: 200_000 },
        orderId: 'M-1001',
        outletId: merchant.outletId,
      },
      { 'idempotency-key': randomUUID() },
    );
    expect(purchase.status).toBe(201);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await telegram?.close();
  });

  /** Opens the Mini App the way the Telegram client does: WebApp injected before the page's scripts. */
  async function openInjected(page: Page, initData: string, theme = DARK_THEME) {
    await page.addInitScript(
      `window.Telegram = { WebApp: { initData: ${JSON.stringify(initData)}, initDataUnsafe: {}, ` +
        `themeParams: ${JSON.stringify(theme)}, colorScheme: ${JSON.stringify(theme === DARK_THEME ? 'dark' : 'light')}, ` +
        'ready() {}, expand() {}, onEvent() {}, offEvent() {} } };',
    );
    await page.goto(`${server.baseUrl}/miniapp?m=${merchant.merchantId}`);
  }

  it('signed initData: balance, tier, a working code with QR and countdown, history (dark theme)', async () => {
    const { page, outsideRequests, close } = await newPage(browser, { width: 375, height: 812 });
    try {
      await openInjected(page, signInitData(botToken, TELEGRAM_USER));
      await seeText(page.getByTestId('miniapp-balance'), '100');
      await see(page.getByText('Кофейня «Зерно»'));
      await seeText(page.getByTestId('miniapp-history'), 'M-1001');
      // The referral card: the customer's code, and a share button for the bot link.
      const { referral_code: referralCode } = await server.db
        .selectFrom('customers')
        .select('referral_code')
        .where('id', '=', customerId)
        .executeTakeFirstOrThrow();
      await seeText(page.getByTestId('miniapp-referral-code'), referralCode);
      await see(page.getByTestId('miniapp-referral-share'));
      // Tier progress: 2 000 ₽ spent of the 5 000 ₽ that reach «Серебро».
      await see(page.getByText(/Ещё 3\s000,00\s₽ покупок — и уровень «Серебро»/));
      // Telegram's theme drives the colours.
      const background = await page.evaluate(
        "getComputedStyle(document.querySelector('.miniapp')).backgroundColor",
      );
      expect(background).toBe('rgb(35, 46, 60)');
      await screenshots(page, 'miniapp-home-dark');

      await page.getByTestId('show-code').click();
      const codeBox = page.getByTestId('miniapp-code');
      await see(codeBox);
      const code = (await codeBox.getAttribute('data-code')) ?? '';
      expect(code).toMatch(/^\d{6}$/);
      await see(page.getByTestId('qr'));
      await seeText(page.getByTestId('miniapp-countdown'), /Действует ещё [45]:\d\d/);
      await screenshots(page, 'miniapp-code');

      // The code works at the till: it resolves to this customer, and pays for a purchase.
      const resolved = await integrationCall(server.baseUrl, merchant.apiKey, '/customers/resolve', { code });
      expect(resolved.status).toBe(200);
      expect((resolved.json.customer as { id: string }).id).toBe(customerId);
      const purchase = await integrationCall(
        server.baseUrl,
        merchant.apiKey,
        '/purchases',
        {
          customer: { code },
          receipt: { total: 100_000 },
          redeemPoints: 30,
          orderId: 'M-1002',
          outletId: merchant.outletId,
        },
        { 'idempotency-key': randomUUID() },
      );
      expect(purchase.status).toBe(201);
      await page.reload();
      await seeText(page.getByTestId('miniapp-history'), 'M-1002');
      // 100 − 30 redeemed (30,00 ₽) + 5% of the 970,00 ₽ paid in money (48, rounded down) = 118.
      await seeText(page.getByTestId('miniapp-balance'), '118');
      expect(outsideRequests).toEqual([]);
    } finally {
      await close();
    }
  }, 120_000);

  it('reads initData and the theme from the URL fragment when WebApp is not injected (light theme)', async () => {
    const { page, close } = await newPage(browser, { width: 375, height: 812 });
    try {
      const initData = signInitData(botToken, TELEGRAM_USER);
      const fragment = new URLSearchParams({
        tgWebAppData: initData,
        tgWebAppVersion: '7.0',
        tgWebAppThemeParams: JSON.stringify(LIGHT_THEME),
      }).toString();
      await page.goto(`${server.baseUrl}/miniapp?m=${merchant.merchantId}#${fragment}`);
      await see(page.getByTestId('miniapp-balance'));
      const background = await page.evaluate(
        "getComputedStyle(document.querySelector('.miniapp')).backgroundColor",
      );
      expect(background).toBe('rgb(239, 239, 243)');
      await page.getByRole('button', { name: 'EN' }).click();
      await see(page.getByText('Your balance'));
      await screenshots(page, 'miniapp-home-light-en');
    } finally {
      await close();
    }
  }, 120_000);

  it('a forged signature, an unregistered user and a page outside Telegram each get a clear error', async () => {
    const { page, close } = await newPage(browser, { width: 375, height: 812 });
    try {
      // Signed with another bot's token: the hash does not verify.
      await openInjected(
        page,
        signInitData(`${botToken.split(':')[0]}:forged-token-of-someone-else`, TELEGRAM_USER),
      );
      const error = page.getByTestId('miniapp-error');
      await see(error);
      expect(await error.getAttribute('data-problem')).toBe('invalid');
      await see(page.getByText('Не удалось подтвердить вход'));
      expect(await page.getByTestId('miniapp-balance').count()).toBe(0);
      await screenshots(page, 'miniapp-error-forged');
    } finally {
      await close();
    }

    const second = await newPage(browser, { width: 375, height: 812 });
    try {
      await openInjected(second.page, signInitData(botToken, { id: 777_000_111, first_name: 'Гость' }));
      await see(second.page.getByTestId('miniapp-error'));
      expect(await second.page.getByTestId('miniapp-error').getAttribute('data-problem')).toBe(
        'not_registered',
      );
      await see(second.page.getByText('Вы ещё не в программе'));
      await screenshots(second.page, 'miniapp-error-not-registered');
    } finally {
      await second.close();
    }

    const third = await newPage(browser, { width: 375, height: 812 });
    try {
      await third.page.goto(`${server.baseUrl}/miniapp?m=${merchant.merchantId}`);
      await see(third.page.getByText('Откройте в Telegram'));
    } finally {
      await third.close();
    }
  }, 120_000);

  it('offers the active campaigns and explains a purchase with campaign points', async () => {
    const [weekend] = await server.db
      .insertInto('campaigns')
      .values([
        {
          merchant_id: merchant.merchantId,
          name: 'Бонус к каждой покупке',
          kind: 'bonus_points',
          status: 'active',
          effect: JSON.stringify({ points: 25 }),
        },
        {
          merchant_id: merchant.merchantId,
          name: 'Двойные баллы в новом году',
          kind: 'multiplier',
          status: 'active',
          starts_at: new Date('2099-01-01T00:00:00Z'),
          effect: JSON.stringify({ multiplierBp: 20_000 }),
        },
      ])
      .returning('id')
      .execute();
    // 1 000,00 ₽: 50 base points and 25 of the bonus.
    const purchase = await integrationCall(
      server.baseUrl,
      merchant.apiKey,
      '/purchases',
      {
        customer: { customerId },
        receipt: { total: 100_000 },
        orderId: 'M-2001',
        outletId: merchant.outletId,
      },
      { 'idempotency-key': randomUUID() },
    );
    expect(purchase.status).toBe(201);
    expect((purchase.json.purchase as { earnBreakdown: unknown[] }).earnBreakdown).toHaveLength(2);
    const { page, close } = await newPage(browser, { width: 375, height: 812 });
    try {
      await openInjected(page, signInitData(botToken, TELEGRAM_USER), LIGHT_THEME);
      const offers = page.getByTestId('miniapp-offers');
      await seeText(offers, /Бонус к каждой покупке\s*сейчас\s*\+25\sбаллов за покупку/);
      await seeText(offers, /Двойные баллы в новом году\s*скоро\s*×2 баллов за покупку/);
      const breakdown = page.getByTestId('miniapp-breakdown');
      await see(breakdown.getByText(/Из чего 75\sбаллов/));
      expect(await breakdown.count()).toBe(1);
      await breakdown.getByText(/Из чего/).click();
      await see(breakdown.getByText('Базовые баллы'));
      await seeText(breakdown, /Бонус к каждой покупке\s*\+25/);
      await screenshots(page, 'miniapp-offers-breakdown');
      await page.getByRole('button', { name: 'EN' }).click();
      await seeText(page.getByTestId('miniapp-offers'), /\+25\spoints on a purchase/);
      await see(page.getByTestId('miniapp-breakdown').getByText(/Where 75\spoints came from/));
      await screenshots(page, 'miniapp-offers-breakdown-en');
    } finally {
      await close();
      await server.db
        .deleteFrom('campaigns')
        .where('id', '=', weekend?.id ?? '')
        .execute();
    }
  }, 120_000);
  it('asks for the date of birth once: saved, it shows in the footnote and the card is gone', async () => {
    const { page, close } = await newPage(browser, { width: 375, height: 812 });
    try {
      await openInjected(page, signInitData(botToken, TELEGRAM_USER), LIGHT_THEME);
      const card = page.getByTestId('miniapp-birthday');
      await see(card);
      await screenshots(page, 'miniapp-birthday');
      await card.getByLabel('Ваш день рождения').fill('1990-03-12');
      await card.getByRole('button', { name: 'Сохранить' }).click();
      await seeText(page.getByTestId('miniapp-birthdate'), 'День рождения: 12 мар. 1990');
      expect(await card.count()).toBe(0);
      const { birth_date: birthDate } = await server.db
        .selectFrom('customers')
        .select('birth_date')
        .where('id', '=', customerId)
        .executeTakeFirstOrThrow();
      expect(birthDate).not.toBeNull();
      // Opened again, the Mini App no longer asks.
      await page.reload();
      await see(page.getByTestId('miniapp-birthdate'));
      expect(await page.getByTestId('miniapp-birthday').count()).toBe(0);
    } finally {
      await close();
    }
  }, 120_000);
});
