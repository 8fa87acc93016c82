import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCustomer } from '../helpers/factories.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../helpers/portal.js';
import {
  ensureWebBuilt,
  hasChromium,
  integrationCall,
  launchBrowser,
  NO_CHROMIUM_REASON,
  navLink,
  newPage,
  screenshots,
  see,
  seeText,
  signIn as signInAt,
  startWebServer,
  type WebServer,
} from './helpers.js';

// The campaigns page in a real browser: an owner creates a double-points campaign and sees the
// sample receipt's breakdown change as the form does, launches it, replays the last 30 and 90 days
// of the merchant's own purchases with it (a chart, nothing granted), pauses it; a manager only reads.
// The merchant's time zone is set on the programme page.

if (!hasChromium) console.warn(NO_CHROMIUM_REASON);

describe.skipIf(!hasChromium)('campaigns page (browser)', () => {
  let server: WebServer;
  let browser: Browser;
  let team: MerchantTeam;

  beforeAll(async () => {
    await ensureWebBuilt();
    server = await startWebServer();
    browser = await launchBrowser();
    team = await createMerchantTeam(server.app, server.db, { name: 'Кофейня «Зерно»' });
    // Two purchases today of 1 500,00 ₽ at the default 5%: 75 base points each.
    for (const phone of ['+79995550201', '+79995550202']) {
      await createTestCustomer(server.db, { merchant: team.merchant, phone });
      const purchase = await integrationCall(
        server.baseUrl,
        team.merchant.apiKey,
        '/purchases',
        {
          customer: { phone },
          receipt: { total: 150_000 },
          orderId: `ORD-${randomUUID().slice(0, 8)}`,
          outletId: team.merchant.outletId,
        },
        { 'idempotency-key': randomUUID() },
      );
      expect(purchase.status).toBe(201);
    }
  }, 180_000);

  // Closing the browser and dropping the database can take a while on a loaded machine.
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  }, 120_000);

  const signIn = (page: Page, account: { email: string; password: string }) =>
    signInAt(page, `${server.baseUrl}/portal`, account);

  it('owner: create with a live preview, launch, simulate 30 and 90 days, pause', async () => {
    const { page, outsideRequests, close } = await newPage(browser);
    try {
      await signIn(page, team.owner);
      await navLink(page, 'Акции').click();
      await see(page.getByText('Акций пока нет'));
      await screenshots(page, 'portal-campaigns-empty');

      await page.getByRole('button', { name: 'Новая акция' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Название').fill('Двойные баллы');
      // 1 000 ₽ at 5%: 50 base points, and x2 adds 50 more.
      const total = page.getByTestId('campaign-preview-total');
      await seeText(total, /^100\s+баллов$/);
      // The server's breakdown (the quote's engine), the unsaved campaign applied as if active.
      const preview = page.getByTestId('campaign-preview');
      await see(preview.getByRole('row', { name: /^Базовые баллы\s*Программа\s*\+50$/ }));
      await see(preview.getByRole('row', { name: /^Двойные баллы\s*Эта акция\s*\+50$/ }));
      await screenshots(page, 'portal-campaign-preview');
      // Before the campaign starts it adds nothing at that moment.
      await dialog.getByLabel('Начало').fill('2030-01-01T00:00');
      await see(preview.getByTestId('campaign-preview-none'));
      await seeText(total, /^50\s+баллов$/);
      await dialog.getByLabel('Начало').fill('');
      await seeText(total, /^100\s+баллов$/);
      await dialog.getByLabel('Множитель, ×').fill('3');
      await seeText(total, /^150\s+баллов$/);
      await dialog.getByLabel('Сумма чека', { exact: true }).fill('200');
      await seeText(total, /^30\s+баллов$/);
      // A receipt below the campaign's minimum gets the base points only.
      await dialog.getByLabel('Сумма чека от').fill('500');
      await seeText(total, /^10\s+баллов$/);
      await dialog.getByLabel('Сумма чека', { exact: true }).fill('1000');
      await seeText(total, /^150\s+баллов$/);
      await dialog.getByLabel('Множитель, ×').fill('2');
      await dialog.getByLabel('Только в определённые дни и часы').check();
      await see(dialog.getByLabel('Сб'));
      await dialog.getByLabel('Только в определённые дни и часы').uncheck();
      await dialog.getByLabel('Сумма чека от').fill('');
      await screenshots(page, 'portal-campaign-form');
      await dialog.getByRole('button', { name: 'Сохранить' }).click();

      const row = page.getByRole('row', { name: /Двойные баллы/ });
      await seeText(row.getByTestId('campaign-status'), 'Черновик');
      const list = await portalRequest(server.app, team.owner, { method: 'GET', url: '/campaigns' });
      const [created] = list.json().campaigns as Array<Record<string, unknown>>;
      expect(created).toMatchObject({
        name: 'Двойные баллы',
        kind: 'multiplier',
        status: 'draft',
        effect: { multiplierBp: 20_000 },
        schedule: null,
        exclusive: false,
      });

      await row.getByRole('button', { name: 'Запустить' }).click();
      await seeText(row.getByTestId('campaign-status'), 'Активна');

      // Replaying today's two purchases with x2: 75 extra points each.
      await row.getByRole('button', { name: 'Проверить на истории' }).click();
      await seeText(page.getByTestId('simulation-extra-points'), /^150$/, 30_000);
      await see(page.getByRole('img', { name: /Дополнительные баллы по дням/ }));
      await page.getByRole('button', { name: '90 дней' }).click();
      await seeText(page.getByTestId('simulation-extra-points'), /^150$/, 30_000);
      await screenshots(page, 'portal-campaigns-simulate');

      // A purchase while it runs gets x2; the dashboard shows the campaign's points and revenue.
      const phone = '+79995550203';
      await createTestCustomer(server.db, { merchant: team.merchant, phone });
      const purchase = await integrationCall(
        server.baseUrl,
        team.merchant.apiKey,
        '/purchases',
        {
          customer: { phone },
          receipt: { total: 100_000 },
          orderId: `ORD-${randomUUID().slice(0, 8)}`,
          outletId: team.merchant.outletId,
        },
        { 'idempotency-key': randomUUID() },
      );
      expect(purchase.status).toBe(201);
      expect((purchase.json.purchase as { earnedPoints: number }).earnedPoints).toBe(100);

      await row.getByRole('button', { name: 'Пауза' }).click();
      await seeText(row.getByTestId('campaign-status'), 'На паузе');
      const paused = await portalRequest(server.app, team.owner, {
        method: 'GET',
        url: `/campaigns/${created?.id}`,
      });
      expect(paused.json().campaign).toMatchObject({ status: 'paused' });
      await see(row.getByRole('button', { name: 'Возобновить' }));
      await screenshots(page, 'portal-campaigns');

      await navLink(page, 'Дашборд').click();
      const byCampaign = page.getByRole('table', { name: 'По акциям' });
      await seeText(
        byCampaign.getByRole('row', { name: /Двойные баллы/ }),
        /Двойные баллы.*50.*1.*1.*1\s000,00/s,
      );
      await screenshots(page, 'portal-dashboard-campaigns');
      expect(outsideRequests).toEqual([]);
    } finally {
      await close();
    }
  }, 240_000);

  it('owner: the merchant time zone on the programme page', async () => {
    const { page, close } = await newPage(browser);
    try {
      await signIn(page, team.owner);
      await navLink(page, 'Программа').click();
      const zone = page.getByLabel('Часовой пояс магазина');
      await expect.poll(() => zone.inputValue(), { timeout: 15_000 }).toBe('Europe/Moscow');
      await zone.selectOption('Asia/Yekaterinburg');
      await see(page.getByText('Часовой пояс сохранён'));
      const me = await portalRequest(server.app, team.owner, { method: 'GET', url: '/me' });
      expect(me.json().merchant.timeZone).toBe('Asia/Yekaterinburg');
      await page.reload();
      await expect.poll(() => zone.inputValue(), { timeout: 15_000 }).toBe('Asia/Yekaterinburg');
    } finally {
      await close();
    }
  }, 120_000);

  it('manager: reads and simulates, cannot create, edit or pause', async () => {
    const { page, close } = await newPage(browser);
    try {
      await signIn(page, team.manager);
      await navLink(page, 'Акции').click();
      const row = page.getByRole('row', { name: /Двойные баллы/ });
      await see(row);
      await see(page.getByText('менять их может владелец или администратор', { exact: false }));
      expect(await page.getByRole('button', { name: 'Новая акция' }).count()).toBe(0);
      expect(await row.getByRole('button', { name: 'Изменить' }).count()).toBe(0);
      expect(await row.getByRole('button', { name: 'Возобновить' }).count()).toBe(0);
      await screenshots(page, 'portal-campaigns-manager');
    } finally {
      await close();
    }
  }, 120_000);
});
