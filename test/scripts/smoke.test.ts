import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createTestCustomer } from '../helpers/factories.js';
import { findLedgerViolations } from '../helpers/ledger.js';

// scripts/smoke-check.sh and scripts/smoke-integrations.sh as operators run them: child processes
// against a real API (the app on its own test database, listening on a loopback port).

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const METRICS_TOKEN = 'metrics-secret';

interface RunResult {
  code: number | null;
  output: string;
}

/** The environment of a child: this process's, minus anything the scripts read. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: '1' };
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (/^(DATABASE_URL|BASE_URL|METRICS_TOKEN|INTEGRATION_API_KEY|SMOKE_|HTTP_)/.test(key)) continue;
    env[key] = value;
  }
  return env;
}

function runScript(script: string, env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(`scripts/${script}`, [], {
      cwd: ROOT,
      env: { ...baseEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The table row of a step: [result, http, ms, detail]. */
function row(output: string, step: string): string[] {
  const line = output.split('\n').find((l) => l.startsWith(`${step} `));
  if (!line) throw new Error(`no row for ${step} in:\n${output}`);
  const [, result = '', http = '', ms = '', detail = ''] =
    /^\S+\s+(\S+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line) ?? [];
  return [result, http, ms, detail];
}

async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let database: TestDatabase;
let app: FastifyInstance;
let baseUrl: string;
let downUrl: string;
let customer: Awaited<ReturnType<typeof createTestCustomer>>;

async function balanceOf(customerId: string) {
  return database.db
    .selectFrom('balances')
    .select(['available', 'pending'])
    .where('customer_id', '=', customerId)
    .executeTakeFirstOrThrow();
}

beforeAll(async () => {
  database = await createTestDatabase({ poolMax: 10 });
  const { config } = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', METRICS_TOKEN });
  app = await buildApp(config, { db: database.db, logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  downUrl = `http://127.0.0.1:${await deadPort()}`;
  customer = await createTestCustomer(database.db, { points: 700 });
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

describe('scripts/smoke-check.sh', () => {
  it('passes against a running API with the metrics token, and checks the token is required', async () => {
    const result = await runScript('smoke-check.sh', { BASE_URL: baseUrl, METRICS_TOKEN });
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/STEP\s+RESULT\s+HTTP\s+MS\s+DETAIL/);
    for (const step of ['health', 'ready', 'live', 'metrics'])
      expect(row(result.output, step)[0]).toBe('PASS');
    expect(row(result.output, 'ready')[3]).toContain('postgres ok');
    expect(row(result.output, 'metrics')[3]).toContain('5 runbook metrics present');
    expect(row(result.output, 'metrics-no-token').slice(0, 2)).toEqual(['PASS', '401']);
    expect(result.output).toMatch(/^PASS: smoke check/m);
  });

  it('fails when the token is wrong or missing', async () => {
    const wrong = await runScript('smoke-check.sh', { BASE_URL: baseUrl, METRICS_TOKEN: 'nope' });
    expect(wrong.code).toBe(1);
    expect(row(wrong.output, 'metrics')).toEqual(['FAIL', '401', expect.any(String), expect.any(String)]);
    expect(row(wrong.output, 'metrics')[3]).toContain('token is wrong');
    expect(row(wrong.output, 'health')[0]).toBe('PASS');
    expect(wrong.output).toMatch(/^FAIL: smoke check .*1 of 5 steps failed/m);

    const missing = await runScript('smoke-check.sh', { BASE_URL: baseUrl });
    expect(missing.code).toBe(1);
    expect(row(missing.output, 'metrics')[3]).toContain('set METRICS_TOKEN');
  });

  it('fails clearly when the API is down', async () => {
    const result = await runScript('smoke-check.sh', { BASE_URL: downUrl, METRICS_TOKEN });
    expect(result.code).toBe(1);
    for (const step of ['health', 'ready', 'live', 'metrics']) {
      expect(row(result.output, step).slice(0, 2)).toEqual(['FAIL', '000']);
      expect(row(result.output, step)[3]).toContain('connection refused');
    }
  });
});

describe('scripts/smoke-integrations.sh', () => {
  const env = () => ({
    BASE_URL: baseUrl,
    INTEGRATION_API_KEY: customer.merchant.apiKey,
    SMOKE_USER_TOKEN: customer.token,
    SMOKE_OUTLET_ID: customer.merchant.outletId,
  });

  it('passes the read-only steps (code, resolve, quote) and writes nothing', async () => {
    const before = await balanceOf(customer.customerId);
    const result = await runScript('smoke-integrations.sh', { ...env(), SMOKE_ALLOW_MUTATIONS: '0' });
    expect(result.code, result.output).toBe(0);
    expect(row(result.output, 'code').slice(0, 2)).toEqual(['PASS', '200']);
    expect(row(result.output, 'resolve')[3]).toContain(`available ${before.available}`);
    expect(row(result.output, 'quote')[0]).toBe('PASS');
    for (const step of ['purchase', 'refund', 'get-purchase', 'balance']) {
      expect(row(result.output, step)[0]).toBe('SKIP');
    }
    const purchases = await database.db.selectFrom('purchases').select('id').execute();
    expect(purchases).toEqual([]);
  });

  it('with mutations buys and fully refunds, leaving the balance where it began', async () => {
    const before = await balanceOf(customer.customerId);
    const result = await runScript('smoke-integrations.sh', { ...env(), SMOKE_ALLOW_MUTATIONS: '1' });
    expect(result.code, result.output).toBe(0);
    for (const step of ['code', 'resolve', 'quote', 'get-purchase', 'balance']) {
      expect(row(result.output, step)[0], step).toBe('PASS');
    }
    expect(row(result.output, 'purchase').slice(0, 2)).toEqual(['PASS', '201']);
    expect(row(result.output, 'refund').slice(0, 2)).toEqual(['PASS', '201']);
    expect(await balanceOf(customer.customerId)).toEqual(before);
    const purchase = await database.db
      .selectFrom('purchases')
      .select(['order_id', 'status', 'earned_points', 'refunded_amount', 'total'])
      .where('customer_id', '=', customer.customerId)
      .executeTakeFirstOrThrow();
    expect(purchase.order_id).toMatch(/^smoke-\d{14}-[0-9a-f]{8}$/);
    expect(purchase.status).toBe('refunded');
    expect(purchase.earned_points).toBeGreaterThan(0);
    expect(purchase.refunded_amount).toBe(purchase.total);
    expect(await findLedgerViolations(database.db)).toEqual([]);
  });

  it('names the customer by phone without a user token', async () => {
    const result = await runScript('smoke-integrations.sh', {
      ...env(),
      SMOKE_USER_TOKEN: '',
      SMOKE_PHONE: customer.phone,
    });
    expect(result.code, result.output).toBe(0);
    expect(row(result.output, 'code')[0]).toBe('SKIP');
    expect(row(result.output, 'resolve')[3]).toContain('by phone');
  });

  it('fails a step that is over its threshold', async () => {
    const result = await runScript('smoke-integrations.sh', { ...env(), SMOKE_MAX_MS_RESOLVE: '0' });
    expect(result.code).toBe(1);
    expect(row(result.output, 'resolve').slice(0, 2)).toEqual(['FAIL', '200']);
    expect(row(result.output, 'resolve')[3]).toContain('too slow: over SMOKE_MAX_MS_RESOLVE=0 ms');
    expect(row(result.output, 'quote')[0]).toBe('PASS');
  });

  it('fails clearly with a wrong API key, a wrong user token, or the API down', async () => {
    const key = await runScript('smoke-integrations.sh', { ...env(), INTEGRATION_API_KEY: 'lk_live_wrong' });
    expect(key.code).toBe(1);
    expect(row(key.output, 'resolve').slice(0, 2)).toEqual(['FAIL', '401']);

    const token = await runScript('smoke-integrations.sh', {
      ...env(),
      SMOKE_USER_TOKEN: 'lu_wrong',
      SMOKE_CUSTOMER_ID: customer.customerId,
    });
    expect(token.code).toBe(1);
    expect(row(token.output, 'code').slice(0, 2)).toEqual(['FAIL', '401']);
    // It still checks the rest with the fallback customer id.
    expect(row(token.output, 'resolve')[3]).toContain('by customerId');

    const down = await runScript('smoke-integrations.sh', { ...env(), BASE_URL: downUrl });
    expect(down.code).toBe(1);
    expect(row(down.output, 'code')[3]).toContain('connection refused');
  });

  it('refuses wrong settings before calling anything (exit 2)', async () => {
    const noKey = await runScript('smoke-integrations.sh', { ...env(), INTEGRATION_API_KEY: '' });
    expect(noKey.code).toBe(2);
    expect(noKey.output).toContain('INTEGRATION_API_KEY is required');
    const noContext = await runScript('smoke-integrations.sh', {
      ...env(),
      SMOKE_OUTLET_ID: '',
      SMOKE_ALLOW_MUTATIONS: '1',
    });
    expect(noContext.code).toBe(2);
    expect(noContext.output).toContain('SMOKE_ALLOW_MUTATIONS=1 needs');
  });
});
