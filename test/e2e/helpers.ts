import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { NotificationListener } from '../../src/db/listener.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

// Browser tests: the real app on a loopback port, the real web bundle (web/dist), Debian's Chromium.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Debian's Chromium; CI installs it. Without it the browser test files skip with a message. */
export const CHROMIUM_PATH = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM_PATH);
export const NO_CHROMIUM_REASON = `browser tests skipped: ${CHROMIUM_PATH} is missing (apt-get install chromium)`;

/** Builds web/dist unless it is fresh; concurrent test files wait on the script's lock. */
export async function ensureWebBuilt(): Promise<void> {
  await promisify(execFile)(
    process.execPath,
    [path.join(ROOT, 'scripts/build-web.mjs'), '--if-stale', '--quiet'],
    {
      cwd: ROOT,
    },
  );
}

/** The app listening on 127.0.0.1 on its own database. */
export interface WebServer extends TestDatabase {
  app: FastifyInstance;
  config: Config;
  baseUrl: string;
  close(): Promise<void>;
}

/** Builds the app as the server does (with a LISTEN connection) and listens on a random loopback port. */
export async function startWebServer(options: { env?: Record<string, string> } = {}): Promise<WebServer> {
  const database = await createTestDatabase();
  const { config } = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...options.env });
  const listener = new NotificationListener(database.url);
  await listener.start();
  const app = await buildApp(config, { db: database.db, redis: null, logger: false, listener });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    ...database,
    app,
    config,
    baseUrl: `http://127.0.0.1:${port}`,
    async close() {
      await app.close();
      await listener.close();
      await database.drop();
    },
  };
}

/**
 * Launches headless Chromium. Playwright's launch() always starts from a new, empty temporary
 * user-data-dir (it refuses --user-data-dir in args), so no profile state leaks between runs.
 */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A page that fails the test on any request leaving loopback (no CDN, no outside fonts). */
export async function newPage(
  browser: Browser,
  options: { locale?: 'ru' | 'en'; width?: number; height?: number } = {},
): Promise<{ page: Page; outsideRequests: string[]; close(): Promise<void> }> {
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1440, height: options.height ?? 900 },
    locale: options.locale === 'en' ? 'en-GB' : 'ru-RU',
    acceptDownloads: true,
  });
  const outsideRequests: string[] = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'data:' || url.protocol === 'blob:' || url.hostname === '127.0.0.1') {
      return route.continue();
    }
    outsideRequests.push(url.href);
    return route.abort();
  });
  if (options.locale) {
    await context.addInitScript(`localStorage.setItem('loyalty.locale', ${JSON.stringify(options.locale)})`);
  }
  const page = await context.newPage();
  return { page, outsideRequests, close: () => context.close() };
}

const SHOTS = path.join(ROOT, 'test-results', 'screenshots');
/** Toasts of earlier steps would cover the page in a full-page shot. */
const HIDE_TOASTS = '.toasts { display: none !important; }';

/** Saves full-page screenshots at phone (375x812) and desktop (1440x900) widths; leaves the desktop size. */
export async function screenshots(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await settle(page);
  await page.screenshot({ path: path.join(SHOTS, `${name}-phone.png`), fullPage: true, style: HIDE_TOASTS });
  await page.setViewportSize({ width: 1440, height: 900 });
  await settle(page);
  await page.screenshot({
    path: path.join(SHOTS, `${name}-desktop.png`),
    fullPage: true,
    style: HIDE_TOASTS,
  });
}

/** Waits for pending requests and a repaint (charts measure their width after a resize). */
async function settle(page: Page): Promise<void> {
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.evaluate(
    'new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))',
  );
  await page.waitForTimeout(150);
}

/** Telegram Mini App initData signed with a bot token, exactly as Telegram signs it. */
export function signInitData(
  botToken: string,
  user: { id: number; first_name?: string; language_code?: string },
  options: { authDate?: Date } = {},
): string {
  const fields = new URLSearchParams({
    auth_date: String(Math.floor((options.authDate ?? new Date()).getTime() / 1000)),
    query_id: 'AAHdF6IQAAAAAN0XohDhrOrc',
    user: JSON.stringify(user),
  });
  const dataCheckString = [...fields.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('\n');
  const secret = createHmac('sha256', 'WebAppData').update(botToken).digest();
  fields.set('hash', createHmac('sha256', secret).update(dataCheckString).digest('hex'));
  return fields.toString();
}

/** Calls the integration API as a till does. */
export async function integrationCall(
  baseUrl: string,
  apiKey: string,
  pathName: string,
  body: object,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/api/v1/integration${pathName}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': apiKey, ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** Waits until the (first) element is visible. */
export async function see(locator: Locator, timeout = 15_000): Promise<void> {
  await locator.first().waitFor({ state: 'visible', timeout });
}

/** Waits until the (first) element's text matches (no-break spaces read as plain ones). */
export async function seeText(locator: Locator, expected: string | RegExp, timeout = 15_000): Promise<void> {
  const read = async () => {
    const text = await locator
      .first()
      .textContent({ timeout: 1000 })
      .catch(() => null);
    // Intl groups digits with no-break spaces; tests write plain ones.
    return (text ?? '').replace(/[\u00a0\u202f]/g, ' ');
  };
  await expect
    .poll(read, { timeout, interval: 100 })
    .toMatch(typeof expected === 'string' ? new RegExp(escapeRegExp(expected)) : expected);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A stored portal/admin session (localStorage), as the page keeps it. */
export async function readStored(page: Page, key: string): Promise<Record<string, unknown>> {
  const raw = (await page.evaluate(`localStorage.getItem(${JSON.stringify(key)})`)) as string | null;
  if (!raw) throw new Error(`nothing stored under ${key}`);
  return JSON.parse(raw) as Record<string, unknown>;
}

/** Overwrites fields of a stored session. */
export async function patchStored(page: Page, key: string, patch: Record<string, unknown>): Promise<void> {
  const next = { ...(await readStored(page, key)), ...patch };
  await page.evaluate(
    `localStorage.setItem(${JSON.stringify(key)}, ${JSON.stringify(JSON.stringify(next))})`,
  );
}

/** A link of the sidebar navigation. */
export function navLink(page: Page, name: string): Locator {
  return page.getByRole('navigation').getByRole('link', { name, exact: true });
}

/** Signs in on a sign-in page (portal or admin, Russian UI) with an e-mail and password. */
export async function signIn(
  page: Page,
  url: string,
  account: { email: string; password: string },
): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Эл. почта').fill(account.email);
  await page.getByLabel('Пароль').fill(account.password);
  await page.getByRole('button', { name: 'Войти' }).click();
}
