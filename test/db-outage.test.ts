import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/db/database.js';
import { type EmbeddedDatabase, findFreePort, startEmbeddedPostgres } from '../src/db/embedded.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-bot-api.js';
import { killProcess, startProcess, type TestProcess } from './helpers/process.js';

// PostgreSQL stops under load and comes back: the API process (as `npm start` runs it, workers
// in-process) must survive, answer 503 database_unavailable quickly, turn /ready red, expose
// loyalty_db_up 0 without stale outbox figures, alert on Telegram by itself, and recover without a
// restart. The database is this file's own server (stopping the shared one would hurt others).

const CHAT_ID = '4242';
const ADMIN_TOKEN = 'outage-test-admin-token-0123456789';
let dataDir: string;
let dbPort: number;
let database: EmbeddedDatabase | null = null;
let telegram: FakeTelegram;
let api: TestProcess;
let base: string;

const startDatabase = async () => {
  database = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'data'), port: dbPort });
  return database;
};

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'loyalty-outage-pg-'));
  // As root, PostgreSQL runs as the `postgres` user, which must be able to enter this folder.
  chmodSync(dataDir, 0o755);
  dbPort = await findFreePort();
  const { url } = await startDatabase();
  // The API only checks the schema; migrating is a deploy step.
  const { db } = createDatabase({ connectionString: url, max: 1 });
  await migrateToLatest(db).finally(() => db.destroy());
  telegram = await startFakeTelegram();
  const botToken = telegram.createBot('alerts_bot');
  const port = await findFreePort();
  base = `http://127.0.0.1:${port}`;
  api = startProcess(process.execPath, ['--import', 'tsx', 'src/server.ts', '--with-workers'], {
    env: {
      DATABASE_URL: url,
      PORT: String(port),
      HOST: '127.0.0.1',
      SEED_DEMO: '0',
      ADMIN_API_TOKEN: ADMIN_TOKEN,
      LOG_LEVEL: 'warn',
      ALERT_TELEGRAM_BOT_TOKEN: botToken,
      ALERT_TELEGRAM_CHAT_ID: CHAT_ID,
      TELEGRAM_API_BASE_URL: telegram.baseUrl,
      // 3 seconds, so the test does not wait minutes for the alert.
      ALERT_DB_DOWN_MINUTES: '0.05',
    },
  });
  await api.waitForOutput(/Press Ctrl-C to stop/, 120_000);
}, 240_000);

afterAll(async () => {
  if (api) await killProcess(api);
  await telegram?.close();
  await database?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A request that needs the database: the outbox counters of the admin API (200 while it is up). */
async function readOutbox(): Promise<{ status: number; code?: string; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${base}/api/v1/admin/outbox`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await res.json()) as { error?: { code?: string } };
  return { status: res.status, code: body.error?.code, ms: Date.now() - started };
}

async function metricsText(): Promise<string> {
  return (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(15_000) })).text();
}

async function readyStatus(): Promise<number> {
  return (await fetch(`${base}/ready`, { signal: AbortSignal.timeout(15_000) })).status;
}

async function eventually<T>(read: () => Promise<T>, isDone: (value: T) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined && isDone(value)) return value;
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms (last: ${String(value)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('PostgreSQL stops and comes back', () => {
  it('answers 503 database_unavailable, alerts, and recovers by itself', async () => {
    expect((await readOutbox()).status).toBe(200);
    expect(await readyStatus()).toBe(200);
    expect(await metricsText()).toMatch(/^loyalty_db_up 1$/m);

    // Requests keep coming while the database stops (fast shutdown: connections are terminated).
    let isLoading = true;
    const seen: Array<{ status: number; code?: string }> = [];
    const load = Array.from({ length: 4 }, async () => {
      while (isLoading) seen.push(await readOutbox());
    });
    await new Promise((r) => setTimeout(r, 300));
    await database?.stop();
    database = null;
    await new Promise((r) => setTimeout(r, 1_000));
    isLoading = false;
    await Promise.all(load);
    // Every request got an HTTP answer: 200 before the stop, 503 database_unavailable after it.
    expect(seen.length).toBeGreaterThan(0);
    for (const r of seen) {
      expect([200, 503]).toContain(r.status);
      if (r.status === 503) expect(r.code).toBe('database_unavailable');
    }

    const down = await readOutbox();
    expect(down).toMatchObject({ status: 503, code: 'database_unavailable' });
    expect(down.ms).toBeLessThan(5_000);
    expect(await readyStatus()).toBe(503);
    const metrics = await metricsText();
    expect(metrics).toMatch(/^loyalty_db_up 0$/m);
    expect(metrics).not.toMatch(/^loyalty_outbox_pending /m);
    expect(metrics).not.toMatch(/^loyalty_outbox_dead_total /m);
    // /live stays green: the process is fine and restarting it would not bring the database back.
    expect((await fetch(`${base}/live`)).status).toBe(200);

    const alert = await telegram.waitForCall(
      (c) => c.method === 'sendMessage' && /PostgreSQL unreachable/.test(String(c.params.text)),
      30_000,
    );
    expect(String(alert.params.chat_id)).toBe(CHAT_ID);
    expect(api.child.exitCode).toBeNull();

    await startDatabase();
    await eventually(readyStatus, (status) => status === 200, 30_000);
    expect((await readOutbox()).status).toBe(200);
    const after = await metricsText();
    expect(after).toMatch(/^loyalty_db_up 1$/m);
    expect(after).toMatch(/^loyalty_outbox_pending \d+$/m);
    await telegram.waitForCall(
      (c) => c.method === 'sendMessage' && /RESOLVED: PostgreSQL reachable again/.test(String(c.params.text)),
      30_000,
    );

    api.child.kill('SIGTERM');
    expect(await api.exited).toBe(0);
    expect(api.output()).not.toMatch(/Unhandled|uncaught|\n\s+at /i);
  }, 180_000);
});
