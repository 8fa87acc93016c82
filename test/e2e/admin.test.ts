import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPortalUser } from '../../src/modules/auth/auth.service.js';
import type { WebhookReceiver } from '../fakes/webhook-receiver.js';
import { createTestCustomer, createTestMerchant, type TestMerchant } from '../helpers/factories.js';
import { createReceiverEndpoint, type RunningDispatcher, startTestDispatcher } from '../helpers/outbox.js';
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
  startWebServer,
  type WebServer,
} from './helpers.js';

// The admin panel in a real browser, with a real outbox dispatcher delivering to a loopback webhook
// receiver: an operator signs in, pauses delivery, sees purchases' events wait (pending grows,
// nothing delivered), resumes and sees them delivered.

if (!hasChromium) console.warn(NO_CHROMIUM_REASON);

describe.skipIf(!hasChromium)('admin panel (browser)', () => {
  let server: WebServer;
  let browser: Browser;
  let dispatcher: RunningDispatcher;
  let receiver: WebhookReceiver;
  let merchant: TestMerchant;
  let customerId: string;
  const operator = { email: `ops-${randomUUID().slice(0, 8)}@example.com`, password: 'operator-password-1' };

  beforeAll(async () => {
    await ensureWebBuilt();
    server = await startWebServer({
      env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1', OUTBOX_RETRY_SCHEDULE: '1,1,1' },
    });
    browser = await launchBrowser();
    merchant = await createTestMerchant(server.db, { name: 'Пекарня «Колос»' });
    customerId = (await createTestCustomer(server.db, { merchant })).customerId;
    receiver = (
      await createReceiverEndpoint(server.db, {
        merchantId: merchant.merchantId,
        eventTypes: ['purchase.committed'],
      })
    ).receiver;
    await createPortalUser(server.db, { merchantId: null, ...operator, role: 'operator', name: 'Оператор' });
    dispatcher = await startTestDispatcher({ db: server.db, url: server.url, config: server.config });
  }, 180_000);

  afterAll(async () => {
    await dispatcher?.stop();
    await receiver?.close();
    await browser?.close();
    await server?.close();
  });

  function navLink(page: Page, name: string) {
    return page.getByRole('navigation').getByRole('link', { name, exact: true });
  }

  async function buy(): Promise<void> {
    const result = await integrationCall(
      server.baseUrl,
      merchant.apiKey,
      '/purchases',
      {
        customer: { customerId },
        receipt: { total: 50_000 },
        orderId: `A-${randomUUID().slice(0, 8)}`,
        outletId: merchant.outletId,
      },
      { 'idempotency-key': randomUUID() },
    );
    expect(result.status).toBe(201);
  }

  async function count(page: Page, status: 'pending' | 'delivered'): Promise<number> {
    const text = (await page.getByTestId(`outbox-count-${status}`).textContent()) ?? '';
    return Number(text.replace(/\D/g, ''));
  }

  it('operator pauses the outbox, sees events wait, resumes and sees them delivered', async () => {
    const { page, outsideRequests, close } = await newPage(browser);
    try {
      await page.goto(`${server.baseUrl}/admin`);
      await see(page.getByRole('heading', { name: 'Вход' }));
      await screenshots(page, 'admin-login');
      await page.getByLabel('Эл. почта').fill(operator.email);
      await page.getByLabel('Пароль').fill(operator.password);
      await page.getByRole('button', { name: 'Войти' }).click();

      await see(page.getByRole('heading', { name: 'Партнёры', level: 1 }));
      await see(page.getByRole('cell', { name: /Пекарня «Колос»/ }));
      await screenshots(page, 'admin-merchants');

      // Delivery works before the pause.
      await buy();
      await receiver.waitForDeliveries(1, 15_000);
      await navLink(page, 'Очередь событий').click();
      await expect.poll(() => count(page, 'delivered'), { timeout: 15_000 }).toBeGreaterThanOrEqual(1);

      await page.getByRole('button', { name: 'Приостановить доставку' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Приостановить доставку' }).click();
      await see(page.getByText('На паузе', { exact: true }));
      const deliveredBefore = await count(page, 'delivered');
      const receivedBefore = receiver.deliveries.length;
      const pendingBefore = await count(page, 'pending');

      for (let i = 0; i < 3; i++) await buy();
      await expect
        .poll(() => count(page, 'pending'), { timeout: 15_000 })
        .toBeGreaterThanOrEqual(pendingBefore + 3);
      // Give a running worker every chance to (wrongly) deliver.
      await page.waitForTimeout(2000);
      expect(receiver.deliveries.length).toBe(receivedBefore);
      expect(await count(page, 'delivered')).toBe(deliveredBefore);
      await screenshots(page, 'admin-outbox-paused');

      await page.getByRole('button', { name: 'Возобновить доставку' }).click();
      await see(page.getByText('Работает', { exact: true }));
      await receiver.waitForDeliveries(receivedBefore + 3, 20_000);
      await expect.poll(() => count(page, 'pending'), { timeout: 15_000 }).toBe(0);
      await expect
        .poll(() => count(page, 'delivered'), { timeout: 15_000 })
        .toBeGreaterThanOrEqual(deliveredBefore + 3);
      await page
        .getByRole('group', { name: 'Статус' })
        .getByRole('button', { name: 'Доставлены', exact: true })
        .click();
      await see(page.getByRole('cell', { name: /purchase\.committed/ }));
      await screenshots(page, 'admin-outbox');

      // Read-only mode from the switches page: the banner says so; then back to normal.
      await navLink(page, 'Режимы').click();
      await page.getByRole('switch').nth(1).click({ force: true });
      await page.getByRole('dialog').getByRole('button', { name: 'Включить' }).click();
      await see(page.getByText('Включён режим «только чтение»', { exact: false }));
      await screenshots(page, 'admin-switches');
      await page.getByRole('switch').nth(1).click({ force: true });
      await page.getByRole('dialog').getByRole('button', { name: 'Выключить' }).click();
      await seeText(page.locator('main'), /Выключен/);
      await expect
        .poll(() => page.getByText('Включён режим «только чтение»', { exact: false }).count())
        .toBe(0);

      await navLink(page, 'Состояние системы').click();
      await see(page.getByText(/PostgreSQL · работает/));
      await screenshots(page, 'admin-system');
      expect(outsideRequests).toEqual([]);
    } finally {
      await close();
    }
  }, 180_000);
});
