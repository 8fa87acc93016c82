import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webRoutes } from '../../src/http/static.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { ensureWebBuilt } from './helpers.js';

// Serving the web bundle: SPA fallback for the three surfaces only, cache headers, and a clear 503
// when the bundle was never built. No browser needed.

describe('web serving without a build', () => {
  const empty = mkdtempSync(path.join(tmpdir(), 'loyalty-web-missing-'));
  afterAll(() => rmSync(empty, { recursive: true, force: true }));

  it('answers 503 on /portal, /admin and /miniapp with how to build, and 404 for assets', async () => {
    const app = Fastify();
    await app.register(webRoutes({ distDir: path.join(empty, 'dist') }));
    for (const url of ['/portal', '/portal/dashboard', '/admin', '/miniapp?m=x']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(503);
      expect(res.headers['content-type']).toContain('text/html');
      expect(res.body).toContain('web assets not built: run <code>npm run build:web</code>');
    }
    expect((await app.inject({ url: '/assets/index.js' })).statusCode).toBe(404);
    await app.close();
  });

  it('picks up a build made while the server runs', async () => {
    const dist = path.join(empty, 'later');
    const app = Fastify();
    await app.register(webRoutes({ distDir: dist }));
    expect((await app.inject({ url: '/portal' })).statusCode).toBe(503);
    mkdirSync(path.join(dist, 'assets'), { recursive: true });
    writeFileSync(path.join(dist, 'index.html'), '<!doctype html><div id="root"></div>');
    writeFileSync(path.join(dist, 'assets', 'app-abc123.js'), 'console.log(1)');
    const page = await app.inject({ url: '/portal/customers/1' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<div id="root">');
    await app.close();
  });
});

describe('web serving in the app', () => {
  let t: TestApp;
  let assetPath: string;

  beforeAll(async () => {
    await ensureWebBuilt();
    t = await createTestApp();
    const index = await t.app.inject({ url: '/portal' });
    const match = /src="(\/assets\/[^"]+\.js)"/.exec(index.body);
    assetPath = match?.[1] ?? '';
  }, 180_000);

  afterAll(async () => t?.close());

  it('serves index.html for each surface and any path under it, never cached', async () => {
    for (const url of [
      '/portal',
      '/portal/',
      '/portal/customers/123',
      '/admin',
      '/admin/outbox',
      '/miniapp?m=1',
    ]) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toContain('text/html');
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.body).toContain('<div id="root"></div>');
    }
  });

  it('lets only Telegram frame the Mini App', async () => {
    const portal = await t.app.inject({ url: '/portal' });
    expect(portal.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    const miniapp = await t.app.inject({ url: '/miniapp' });
    expect(miniapp.headers['content-security-policy']).toContain('https://web.telegram.org');
  });

  it('caches hashed assets for a year', async () => {
    expect(assetPath).toMatch(/^\/assets\/index-[\w-]+\.js$/);
    const res = await t.app.inject({ url: assetPath });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('javascript');
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });

  it('never shadows the API, the docs, the ops endpoints or the Telegram webhooks', async () => {
    const api = await t.app.inject({ url: '/api/v1/portal/dashboard' });
    expect(api.statusCode).toBe(401);
    expect(api.json().error.code).toBe('unauthorized');
    const unknownApi = await t.app.inject({ url: '/api/v1/nope' });
    expect(unknownApi.statusCode).toBe(404);
    expect(unknownApi.headers['content-type']).toContain('application/json');
    expect((await t.app.inject({ url: '/health' })).json()).toMatchObject({ status: expect.any(String) });
    expect((await t.app.inject({ url: '/live' })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/metrics' })).body).toContain('http_requests_total');
    const docs = await t.app.inject({ url: '/docs/json' });
    expect(docs.json().openapi).toBe('3.1.0');
    const telegram = await t.app.inject({ method: 'POST', url: '/telegram/notify/webhook', payload: {} });
    expect(telegram.headers['content-type'] ?? '').not.toContain('text/html');
    const unknownAsset = await t.app.inject({ url: '/assets/missing-file.js' });
    expect(unknownAsset.statusCode).toBe(404);
  });
});
