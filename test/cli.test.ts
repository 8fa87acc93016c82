import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { SecretBox } from '../src/lib/crypto.js';
import { CreateCampaignBody } from '../src/modules/campaigns/campaigns.schema.js';
import { createCampaign } from '../src/modules/campaigns/campaigns.service.js';
import {
  createWebhookEndpoint,
  getWebhookEndpointForDelivery,
} from '../src/modules/webhooks/webhooks.service.js';
import { type CliResult, spawnCli } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestMerchant } from './helpers/factories.js';

// The operator CLI as operators run it (`npm run cli` is `tsx src/cli.ts`): a child process against
// DATABASE_URL. Each process costs a second or more, so commands run once, two at a time, and share
// their results; `node --import tsx` is tsx without its extra wrapper process.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let database: TestDatabase;
let app: FastifyInstance;

const MAX_CHILDREN = 2;
let running = 0;
const waiting: Array<() => void> = [];

async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  if (running >= MAX_CHILDREN) await new Promise<void>((resolve) => waiting.push(resolve));
  running += 1;
  try {
    return await spawnCli(database.url, args, env);
  } finally {
    running -= 1;
    waiting.shift()?.();
  }
}

/** Runs a --json command that must succeed; its whole stdout must be one JSON object. */
async function runJson<T>(args: string[]): Promise<T> {
  const result = await runCli([...args, '--json']);
  expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
  let parsed: unknown;
  expect(
    () => {
      parsed = JSON.parse(result.stdout);
    },
    `stdout of ${args.join(' ')} is exactly one JSON value: ${result.stdout}`,
  ).not.toThrow();
  expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed), result.stdout).toBe(true);
  return parsed as T;
}

/** A command run once and shared by the tests that need it. */
function once<T>(run: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => {
    promise ??= run();
    return promise;
  };
}

interface DemoSeed {
  MERCHANT_ID: string;
  INTEGRATION_API_KEY: string;
  SMOKE_USER_TOKEN: string;
  SMOKE_OUTLET_ID: string;
  SMOKE_DEVICE_ID: string;
  SMOKE_MANAGER_ID: string;
  SMOKE_CUSTOMER_ID: string;
  SMOKE_PHONE: string;
  PORTAL_EMAIL: string;
  PORTAL_PASSWORD: string;
}

const seedA = once(() => runJson<DemoSeed>(['demo:seed']));
const seedB = once(() => runJson<DemoSeed>(['demo:seed']));
const merchant = once(() =>
  runJson<{ merchantId: string; name: string }>(['merchant:create', '--name', 'CLI Bakery']),
);
const apiKey = once(async () =>
  runJson<{ apiKeyId: string; apiKey: string }>([
    'apikey:create',
    '--merchant',
    (await merchant()).merchantId,
  ]),
);
const customer = once(async () =>
  runJson<{ customerId: string; token: string }>([
    'customer:create',
    '--merchant',
    (await merchant()).merchantId,
    '--phone',
    '+79991234501',
  ]),
);

beforeAll(async () => {
  database = await createTestDatabase({ poolMax: 4 });
  const { config } = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' });
  app = await buildApp(config, { db: database.db, logger: false });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

// Commands queue behind each other (two at a time), so a test may wait for several processes.
describe.concurrent('cli', { timeout: 120_000 }, () => {
  it('demo:seed --json prints the smoke credentials, and they work against the API', async () => {
    const seed = await seedA();
    expect(Object.keys(seed).sort()).toEqual(
      [
        'INTEGRATION_API_KEY',
        'MERCHANT_ID',
        'PORTAL_EMAIL',
        'PORTAL_PASSWORD',
        'SMOKE_CUSTOMER_ID',
        'SMOKE_DEVICE_ID',
        'SMOKE_MANAGER_ID',
        'SMOKE_OUTLET_ID',
        'SMOKE_PHONE',
        'SMOKE_USER_TOKEN',
      ].sort(),
    );
    for (const key of [
      'MERCHANT_ID',
      'SMOKE_OUTLET_ID',
      'SMOKE_DEVICE_ID',
      'SMOKE_MANAGER_ID',
      'SMOKE_CUSTOMER_ID',
    ]) {
      expect(seed[key as keyof DemoSeed], key).toMatch(UUID);
    }
    const headers = { 'x-api-key': seed.INTEGRATION_API_KEY };

    const resolved = await app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers,
      payload: { phone: seed.SMOKE_PHONE },
    });
    expect(resolved.statusCode, resolved.body).toBe(200);
    expect(resolved.json()).toMatchObject({
      customer: { id: seed.SMOKE_CUSTOMER_ID, phone: seed.SMOKE_PHONE },
    });

    const issued = await app.inject({
      method: 'POST',
      url: '/api/v1/client/code',
      headers: { authorization: `Bearer ${seed.SMOKE_USER_TOKEN}` },
    });
    expect(issued.statusCode, issued.body).toBe(200);
    const { code } = issued.json<{ code: string }>();

    const committed = await app.inject({
      method: 'POST',
      url: '/api/v1/integration/purchases',
      headers: { ...headers, 'idempotency-key': 'cli-smoke-1' },
      payload: {
        customer: { code },
        receipt: { total: 10_000 },
        orderId: 'cli-smoke-1',
        outletId: seed.SMOKE_OUTLET_ID,
        deviceId: seed.SMOKE_DEVICE_ID,
        managerId: seed.SMOKE_MANAGER_ID,
      },
    });
    expect(committed.statusCode, committed.body).toBe(201);
    expect(committed.json()).toMatchObject({
      purchase: { orderId: 'cli-smoke-1', customerId: seed.SMOKE_CUSTOMER_ID, status: 'committed' },
    });

    // The portal owner of the demo merchant can sign in.
    const login = await app.inject({
      method: 'POST',
      url: '/api/v1/portal/auth/login',
      payload: { email: seed.PORTAL_EMAIL, password: seed.PORTAL_PASSWORD },
    });
    expect(login.statusCode, login.body).toBe(200);
    expect(login.json()).toMatchObject({ user: { role: 'owner', merchantId: seed.MERCHANT_ID } });
  });

  it('demo:seed creates a new merchant each time', async () => {
    const [a, b] = await Promise.all([seedA(), seedB()]);
    expect(a.MERCHANT_ID).not.toBe(b.MERCHANT_ID);
    expect(a.INTEGRATION_API_KEY).not.toBe(b.INTEGRATION_API_KEY);
    // Each key acts for its own merchant: B's key does not see A's customer.
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers: { 'x-api-key': b.INTEGRATION_API_KEY },
      payload: { customerId: a.SMOKE_CUSTOMER_ID },
    });
    expect(res.statusCode).toBe(404);
  });

  it('merchant:create, apikey:create and customer:create give a working key and customer', async () => {
    const created = await merchant();
    expect(created).toMatchObject({ merchantId: expect.stringMatching(UUID), name: 'CLI Bakery' });
    const [key, person] = await Promise.all([apiKey(), customer()]);
    expect(key.apiKey).toEqual(expect.any(String));
    expect(person).toEqual({ customerId: expect.stringMatching(UUID), token: expect.any(String) });

    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers: { 'x-api-key': key.apiKey },
      payload: { phone: '+79991234501' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ customer: { id: person.customerId }, balance: { available: 0 } });
    const code = await app.inject({
      method: 'POST',
      url: '/api/v1/client/code',
      headers: { authorization: `Bearer ${person.token}` },
    });
    expect(code.statusCode, code.body).toBe(200);
  });

  it('customer:token issues a new working token for a customer', async () => {
    const person = await customer();
    const issued = await runJson<{ customerId: string; token: string }>([
      'customer:token',
      '--customer',
      person.customerId,
    ]);
    expect(issued.customerId).toBe(person.customerId);
    expect(issued.token).not.toBe(person.token);
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/client/me',
      headers: { authorization: `Bearer ${issued.token}` },
    });
    expect(res.statusCode, res.body).toBe(200);
  });

  it('customer:create joins with the welcome campaigns; campaigns:birthday runs and reports as JSON', async () => {
    // A merchant of its own: the other tests' customers join while this campaign runs.
    const { merchantId } = await createTestMerchant(database.db);
    const welcome = await createCampaign(database.db, {
      merchantId,
      input: CreateCampaignBody.parse({
        name: 'CLI welcome',
        kind: 'welcome',
        status: 'active',
        effect: { points: 25 },
      }),
    });
    try {
      const joined = await runJson<{ customerId: string }>([
        'customer:create',
        '--merchant',
        merchantId,
        '--phone',
        '+79991234509',
      ]);
      const event = await database.db
        .selectFrom('outbox_events')
        .select('payload')
        .where('type', '=', 'customer.enrolled')
        .where(sql<boolean>`payload->>'customerId' = ${joined.customerId}`)
        .executeTakeFirstOrThrow();
      expect(event.payload).toMatchObject({ source: 'cli', welcomePoints: 25 });
    } finally {
      await database.db
        .updateTable('campaigns')
        .set({ status: 'ended' })
        .where('id', '=', welcome.id)
        .execute();
    }
    expect(await runJson(['campaigns:birthday'])).toEqual({
      campaigns: expect.any(Number),
      customers: expect.any(Number),
      points: expect.any(Number),
    });
  });

  it('points:expire and points:activate run and report as JSON', async () => {
    const [expired, activated] = await Promise.all([
      runJson<Record<string, unknown>>(['points:expire']),
      runJson<Record<string, unknown>>(['points:activate']),
    ]);
    expect(Object.keys(expired).length).toBeGreaterThan(0);
    expect(Object.keys(activated).length).toBeGreaterThan(0);
  });

  it('db:status shows every migration applied, and db:migrate applies nothing twice', async () => {
    const status = await runJson<{
      migrations: Array<{ name: string; appliedAt: string | null }>;
      pending: string[];
    }>(['db:status']);
    expect(status.pending).toEqual([]);
    expect(status.migrations.length).toBeGreaterThan(0);
    for (const m of status.migrations) expect(m.appliedAt, m.name).not.toBeNull();
    expect(await runJson(['db:migrate'])).toEqual({ applied: [] });
  });

  it('config:check --json refuses weak production secrets, naming each, and passes strong ones', async () => {
    const production = {
      NODE_ENV: 'production',
      APP_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      JWT_SECRET: 'jwt-secret',
      ADMIN_API_TOKEN: 'admin-token-admin-token-admin-token',
      METRICS_TOKEN: '',
    };
    const weak = await runCli(['config:check', '--json'], production);
    expect(weak.code, weak.stderr).toBe(1);
    const report = JSON.parse(weak.stdout) as { ok: boolean; problems: Array<{ variable: string }> };
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.variable).sort()).toEqual([
      'ADMIN_API_TOKEN',
      'JWT_SECRET',
      'METRICS_TOKEN',
    ]);
    expect(weak.stdout).not.toContain('admin-token');

    const strong = await runCli(['config:check', '--json'], {
      ...production,
      JWT_SECRET: randomBytes(32).toString('base64'),
      ADMIN_API_TOKEN: randomBytes(32).toString('hex'),
      METRICS_TOKEN: randomBytes(24).toString('hex'),
    });
    expect(strong.code, strong.stderr).toBe(0);
    expect(JSON.parse(strong.stdout)).toMatchObject({ ok: true });
  });

  it('keys:rotate re-seals stored secrets under the new APP_ENCRYPTION_KEY, the old key given once', async () => {
    const own = await createTestDatabase({ poolMax: 2 });
    const dir = mkdtempSync(path.join(tmpdir(), 'loyalty-rotate-'));
    try {
      const [k1, k2, k3] = [0, 1, 2].map(() => randomBytes(32).toString('hex')) as [string, string, string];
      const merchant = await createTestMerchant(own.db);
      const { id, secret } = await createWebhookEndpoint(own.db, {
        merchantId: merchant.merchantId,
        url: 'https://rotate.example.com/hook',
        box: new SecretBox(k1),
      });
      const env = { DATABASE_URL: own.url, APP_ENCRYPTION_KEY: k2 };

      const rotated = await runCli(['keys:rotate', '--old-key', k1, '--json'], env);
      expect(rotated.code, rotated.stderr).toBe(0);
      expect(JSON.parse(rotated.stdout)).toEqual({
        dryRun: false,
        resealed: {
          'merchants.telegram_bot_token_enc': 0,
          'webhook_endpoints.secret_enc': 1,
          'webhook_endpoints.previous_secret_enc': 0,
        },
        alreadyCurrent: 0,
        sealedPlaintext: 0,
        installationKeyRetired: false,
      });
      expect((await getWebhookEndpointForDelivery(own.db, id, new SecretBox(k2)))?.secrets).toEqual([secret]);

      // The old key from a file, kept out of the shell history; a dry run changes nothing.
      const keyFile = path.join(dir, 'old.key');
      writeFileSync(keyFile, `${k2}\n`, { mode: 0o600 });
      const dry = await runCli(['keys:rotate', '--old-key-file', keyFile, '--dry-run', '--json'], {
        ...env,
        APP_ENCRYPTION_KEY: k3,
      });
      expect(dry.code, dry.stderr).toBe(0);
      expect(JSON.parse(dry.stdout)).toMatchObject({
        dryRun: true,
        resealed: { 'webhook_endpoints.secret_enc': 1 },
      });
      expect((await getWebhookEndpointForDelivery(own.db, id, new SecretBox(k2)))?.secrets).toEqual([secret]);

      const wrong = await runCli(['keys:rotate', '--old-key', k3, '--json'], {
        ...env,
        APP_ENCRYPTION_KEY: k1,
      });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/key_mismatch/);
      expect(wrong.stdout).toBe('');
      const none = await runCli(['keys:rotate', '--json'], env);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/--old-key/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await own.drop();
    }
  });

  it.for<[string, string[], RegExp]>([
    ['an unknown command', ['no:such-command'], /unknown command/i],
    ['customer:create without --merchant', ['customer:create', '--phone', '+79991234502'], /--merchant/],
    [
      'customer:create with an invalid phone',
      ['customer:create', '--merchant', '00000000-0000-4000-8000-000000000000', '--phone', 'not-a-phone'],
      /--phone/,
    ],
  ])(
    'exits 1 on %s, with the reason on stderr and nothing on stdout',
    async ([, args, reason], { expect }) => {
      const result = await runCli([...args, '--json']);
      expect.soft(result.code, `exit code (stderr: ${result.stderr.trim()})`).toBe(1);
      expect.soft(result.stderr).toMatch(reason);
      expect.soft(result.stdout, 'stdout').toBe('');
    },
  );
});
