import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPortalUser } from '../../src/modules/auth/auth.service.js';
import { createCustomer } from '../../src/modules/customers/customers.service.js';
import { createMerchant, createOutlet } from '../../src/modules/merchants/merchants.service.js';
import { DEFAULT_RULES, ProgrammeRules } from '../../src/modules/programme/programme.schema.js';
import { type FakeTelegram, startFakeTelegram } from '../fakes/telegram-bot-api.js';
import {
  ensureWebBuilt,
  hasChromium,
  integrationCall,
  launchBrowser,
  NO_CHROMIUM_REASON,
  navLink,
  newPage,
  patchStored,
  readStored,
  screenshots,
  see,
  seeText,
  signIn as signInAt,
  startWebServer,
  type WebServer,
} from './helpers.js';

// The merchant portal in a real browser: an owner signs in, changes the programme (live preview),
// creates an API key in the UI and reads it off the page; a purchase made with THAT key shows on the
// dashboard and in the customer's history. A cashier sees only what the role allows.

const SESSION = 'loyalty.portal.session';

if (!hasChromium) console.warn(NO_CHROMIUM_REASON);

describe.skipIf(!hasChromium)('merchant portal (browser)', () => {
  let server: WebServer;
  let browser: Browser;
  let telegram: FakeTelegram;
  let merchantId: string;
  let outletId: string;
  const owner = { email: `owner-${randomUUID().slice(0, 8)}@example.com`, password: 'owner-password-1' };
  const cashier = {
    email: `cashier-${randomUUID().slice(0, 8)}@example.com`,
    password: 'cashier-password-1',
  };
  const phone = '+79995550101';
  let customerId: string;

  beforeAll(async () => {
    await ensureWebBuilt();
    telegram = await startFakeTelegram();
    server = await startWebServer({
      env: {
        TELEGRAM_API_BASE_URL: telegram.baseUrl,
        TELEGRAM_NOTIFY_BOT_TOKEN: telegram.createBot('zerno_staff_bot'),
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
      },
    });
    browser = await launchBrowser();
    const merchant = await createMerchant(server.db, { name: 'Кофейня «Зерно»', rules: DEFAULT_RULES });
    merchantId = merchant.id;
    outletId = (
      await createOutlet(server.db, { merchantId, name: 'Тверская, 12', address: 'Москва, Тверская 12' })
    ).id;
    await createPortalUser(server.db, { merchantId, ...owner, role: 'owner', name: 'Анна Владелец' });
    await createPortalUser(server.db, { merchantId, ...cashier, role: 'cashier' });
    customerId = (await createCustomer(server.db, { merchantId, phone, name: 'Иван Петров' })).id;
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await telegram?.close();
  });

  const signIn = (page: Page, account: { email: string; password: string }) =>
    signInAt(page, `${server.baseUrl}/portal`, account);

  it('owner: programme, API key from the UI, a purchase with it on the dashboard and in the history', async () => {
    const { page, outsideRequests, close } = await newPage(browser);
    try {
      await page.goto(`${server.baseUrl}/portal`);
      await see(page.getByRole('heading', { name: 'Вход' }));
      await screenshots(page, 'portal-login');
      await page.getByLabel('Эл. почта').fill(owner.email);
      await page.getByLabel('Пароль').fill('wrong-password');
      await page.getByRole('button', { name: 'Войти' }).click();
      await see(page.getByText('Неверная почта или пароль'));

      await signIn(page, owner);
      await see(page.getByRole('heading', { name: 'Дашборд', level: 1 }));
      await see(page.getByText('Кофейня «Зерно»'));

      // Programme: the live preview follows the form before anything is saved.
      await navLink(page, 'Программа').click();
      const earnRate = page.getByLabel('Начисление, %').first();
      await expect.poll(() => earnRate.inputValue()).toBe('5');
      await seeText(page.getByTestId('preview-earn'), /50\s+баллов/);
      await earnRate.fill('7');
      await seeText(page.getByTestId('preview-earn'), /70\s+баллов/);
      await screenshots(page, 'portal-programme');
      await page.getByRole('button', { name: 'Сохранить' }).click();
      await see(page.getByText('Программа сохранена', { exact: false }));
      const stored = await server.db
        .selectFrom('merchants')
        .select('rules')
        .where('id', '=', merchantId)
        .executeTakeFirstOrThrow();
      expect(ProgrammeRules.parse(stored.rules).earnRateBp).toBe(700);

      // API key: shown once in a copyable box, then only its prefix.
      await navLink(page, 'API-ключи').click();
      await page.getByRole('button', { name: 'Создать ключ' }).click();
      await page.getByLabel('Название').fill('Касса 1');
      await page.getByRole('button', { name: 'Создать', exact: true }).click();
      const keyBox = page.getByTestId('new-api-key');
      await see(keyBox);
      const apiKey = (await keyBox.textContent())?.trim() ?? '';
      expect(apiKey).toMatch(/^lk_live_/);
      await see(page.getByText('показывается только один раз', { exact: false }));
      await page.setViewportSize({ width: 375, height: 812 });
      await page.screenshot({ path: 'test-results/screenshots/portal-api-key-created-phone.png' });
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.screenshot({ path: 'test-results/screenshots/portal-api-key-created-desktop.png' });
      await page.getByRole('button', { name: 'Я сохранил(а)' }).click();
      await seeText(page.getByTestId('api-key-prefix').first(), `${apiKey.slice(0, 12)}…`);
      expect(await page.content()).not.toContain(apiKey);
      await screenshots(page, 'portal-api-keys');

      // A till uses that key: 1 500,00 ₽ at 7% earns 105 points.
      const orderId = `ORD-${randomUUID().slice(0, 8)}`;
      const purchase = await integrationCall(
        server.baseUrl,
        apiKey,
        '/purchases',
        { customer: { phone }, receipt: { total: 150_000 }, orderId, outletId },
        { 'idempotency-key': randomUUID() },
      );
      expect(purchase.status).toBe(201);
      expect((purchase.json.purchase as { earnedPoints: number }).earnedPoints).toBe(105);

      await navLink(page, 'Дашборд').click();
      await seeText(page.getByTestId('kpi-purchases'), '1');
      await seeText(page.getByTestId('dashboard-totals'), '1 500,00');
      await seeText(page.getByTestId('dashboard-totals'), '105');
      await see(page.getByRole('cell', { name: 'Тверская, 12' }));
      await screenshots(page, 'portal-dashboard');

      await navLink(page, 'Клиенты').click();
      await page.getByLabel('Поиск').fill('5550101');
      await page.getByRole('cell', { name: /Иван Петров/ }).click();
      await see(page.getByRole('heading', { name: 'Иван Петров' }));
      const ledger = page.getByTestId('customer-ledger');
      await seeText(ledger, orderId);
      await seeText(ledger, '+105');
      await seeText(page.getByTestId('customer-available'), '105');
      await screenshots(page, 'portal-customer');

      // Manual adjustment with a reason lands in the same history.
      await page.getByLabel('Баллы', { exact: true }).fill('20');
      await page.getByLabel('Причина').fill('Компенсация');
      await page.getByRole('button', { name: 'Начислить 20' }).click();
      await seeText(page.getByTestId('customer-available'), '125');
      await seeText(ledger, 'Компенсация');

      // The date of birth, for birthday campaigns: set here, shown in the details.
      await page.getByLabel('Дата рождения').fill('1985-07-21');
      await page.getByRole('button', { name: 'Сохранить' }).click();
      await seeText(page.getByTestId('customer-birth-date'), '21 июл. 1985');

      await navLink(page, 'Клиенты').click();
      await see(page.getByRole('cell', { name: /Иван Петров/ }));
      await screenshots(page, 'portal-customers');

      await navLink(page, 'Операции').click();
      await see(page.getByRole('cell', { name: orderId }));
      const download = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Выгрузить CSV' }).click();
      const csv = await download;
      expect(csv.suggestedFilename()).toMatch(/\.csv$/);
      await screenshots(page, 'portal-transactions');

      // English, remembered across reloads.
      await page.getByRole('button', { name: 'EN' }).click();
      await see(navLink(page, 'Dashboard'));
      await page.reload();
      await see(navLink(page, 'Dashboard'));
      await navLink(page, 'Dashboard').click();
      await seeText(page.getByTestId('dashboard-totals'), '1,500.00');
      await screenshots(page, 'portal-dashboard-en');

      // A chain's revenue: the money total stays inside its card, on a desktop and on a phone.
      const large = await integrationCall(
        server.baseUrl,
        apiKey,
        '/purchases',
        { customer: { phone }, receipt: { total: 1_234_567_890 }, orderId: `${orderId}-2`, outletId },
        { 'idempotency-key': randomUUID() },
      );
      expect(large.status).toBe(201);
      await page.reload();
      await seeText(page.getByTestId('dashboard-totals'), '12,347,178.90');
      for (const width of [1440, 1024, 375]) {
        await page.setViewportSize({ width, height: 900 });
        const overflowing = await page
          .getByTestId('dashboard-totals')
          .locator('.kpi')
          .evaluateAll((cards) =>
            cards
              .filter((card) => {
                const value = card.querySelector('.kpi-value');
                return value !== null && value.scrollWidth > value.clientWidth;
              })
              .map((card) => card.textContent),
          );
        expect(overflowing, `at ${width}px`).toEqual([]);
      }
      expect(outsideRequests).toEqual([]);
    } finally {
      await close();
    }
  }, 180_000);

  it('owner: webhooks, Telegram, outlets and team (secrets shown once, staff link with QR)', async () => {
    const { page, outsideRequests, close } = await newPage(browser);
    try {
      await signIn(page, owner);
      await see(page.getByRole('heading', { name: 'Дашборд', level: 1 }));

      // Webhooks: the secret is shown once; a test event shows up in the delivery log.
      await navLink(page, 'Вебхуки').click();
      await page.getByRole('button', { name: 'Добавить адрес' }).click();
      await page.getByLabel('URL').fill('http://127.0.0.1:9/hooks/loyalty');
      await page.getByLabel('Описание').fill('CRM');
      await page.getByRole('dialog').getByRole('button', { name: 'Добавить', exact: true }).click();
      await seeText(page.getByTestId('webhook-secret'), /^whsec_/);
      await page.getByRole('button', { name: 'Я сохранил(а)' }).click();
      await see(page.getByText('http://127.0.0.1:9/hooks/loyalty'));
      await page.getByRole('button', { name: 'Тестовое событие' }).click();
      await see(page.getByRole('cell', { name: 'webhook.test' }));
      await screenshots(page, 'portal-webhooks');

      // Telegram: connect the customer bot by its token; a staff link with a QR code.
      const customerBot = telegram.createBot('zerno_coffee_bot');
      await navLink(page, 'Telegram').click();
      await page.getByLabel('Токен бота').fill(customerBot);
      await page.getByRole('button', { name: 'Подключить' }).click();
      await see(page.getByRole('link', { name: '@zerno_coffee_bot' }));
      await page.getByRole('button', { name: 'Создать ссылку для сотрудника' }).click();
      await seeText(page.getByTestId('staff-deep-link'), /^https:\/\/t\.me\/zerno_staff_bot\?start=sl_/);
      await see(page.getByTestId('qr'));
      await screenshots(page, 'portal-telegram');

      // Outlets, tills and cashiers.
      await navLink(page, 'Точки и кассы').click();
      await page.getByRole('tab', { name: 'Кассы' }).click();
      await page.getByRole('button', { name: 'Добавить кассу' }).click();
      await page.getByRole('dialog').getByLabel('Название').fill('Касса у окна');
      await page.getByRole('dialog').getByLabel('Точка').selectOption({ label: 'Тверская, 12' });
      await page.getByRole('dialog').getByRole('button', { name: 'Сохранить' }).click();
      await see(page.getByRole('cell', { name: 'Касса у окна' }));
      await page.getByRole('tab', { name: 'Точки' }).click();
      await screenshots(page, 'portal-outlets');

      // Team: add a manager.
      await navLink(page, 'Сотрудники').click();
      await page.getByRole('button', { name: 'Добавить сотрудника' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Эл. почта').fill(`manager-${randomUUID().slice(0, 8)}@example.com`);
      await dialog.getByLabel('Имя').fill('Пётр Менеджер');
      await dialog.getByLabel('Роль', { exact: true }).selectOption('manager');
      await dialog.getByLabel('Пароль', { exact: true }).fill('manager-password-1');
      await dialog.getByRole('button', { name: 'Сохранить' }).click();
      await see(page.getByRole('cell', { name: /Пётр Менеджер/ }));
      await screenshots(page, 'portal-users');

      await navLink(page, 'Журнал действий').click();
      await see(page.getByRole('cell', { name: /webhook\.create/ }));
      await page.getByRole('button', { name: 'Изменения' }).first().click();
      await see(page.getByText('Стало'));
      await screenshots(page, 'portal-audit');
      expect(outsideRequests).toEqual([]);
    } finally {
      await close();
    }
  }, 180_000);

  it('a cashier sees only what the role may use, and a dead session goes back to sign-in', async () => {
    const { page, close } = await newPage(browser);
    try {
      await signIn(page, cashier);
      await see(navLink(page, 'Клиенты'));
      await see(navLink(page, 'Операции'));
      for (const hidden of [
        'Дашборд',
        'Программа',
        'API-ключи',
        'Вебхуки',
        'Сотрудники',
        'Журнал действий',
      ]) {
        expect(await navLink(page, hidden).count()).toBe(0);
      }
      await navLink(page, 'Операции').click();
      await see(page.getByRole('heading', { name: 'Операции', level: 1 }));
      expect(await page.getByRole('button', { name: 'Выгрузить CSV' }).count()).toBe(0);
      await page.goto(`${server.baseUrl}/portal/api-keys`);
      await see(page.getByText('Нет доступа'));

      // Both tokens stop working (a reused refresh token revokes the family): back to sign-in.
      await patchStored(page, SESSION, {
        accessToken: 'expired',
        refreshToken: 'lr_revoked',
        expiresAt: 0,
      });
      await page.goto(`${server.baseUrl}/portal/customers`);
      await see(page.getByRole('heading', { name: 'Вход' }));
    } finally {
      await close();
    }
  }, 120_000);

  it('refreshes an expired access token once, even with parallel requests', async () => {
    const { page, close } = await newPage(browser);
    try {
      await signIn(page, owner);
      await see(page.getByRole('heading', { name: 'Дашборд', level: 1 }));
      // Pretend the access token expired: the next requests (several at once) must share one refresh.
      const before = (await readStored(page, SESSION)).refreshToken;
      await patchStored(page, SESSION, { expiresAt: 0 });
      const refreshes: string[] = [];
      page.on('request', (request) => {
        if (request.url().endsWith('/api/v1/portal/auth/refresh')) refreshes.push(request.url());
      });
      await navLink(page, 'Клиенты').click();
      await see(page.getByRole('cell', { name: /Иван Петров/ }));
      await navLink(page, 'Дашборд').click();
      await see(page.getByTestId('kpi-purchases'));
      expect(refreshes).toHaveLength(1);
      const after = (await readStored(page, SESSION)).refreshToken;
      expect(after).not.toBe(before);
    } finally {
      await close();
    }
  }, 120_000);

  it('unknown paths under /portal load the app (client-side routes), and customerId is preserved', async () => {
    const response = await fetch(`${server.baseUrl}/portal/customers/${customerId}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(await response.text()).toContain('<div id="root">');
  });
});
