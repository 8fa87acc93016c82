import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../../src/db/embedded.js';
import { createApiKey } from '../../src/modules/merchants/merchants.service.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createTestCustomer, createTestMerchant, type TestMerchant } from '../helpers/factories.js';
import { killProcess, startProcess, type TestProcess } from '../helpers/process.js';
import {
  ApiProcess,
  auditCommits,
  type CommitAttempt,
  countLedgerViolations,
  getJson,
  sendCommit,
  sleep,
  soak,
  waitFor,
} from './harness.js';
import { recordFaultRow } from './report.js';

// Scenario 3: Redis (REDIS_URL set) stops and starts again while tills look customers up by their
// one-time code and commit. The code-lookup limit counts in Redis while it is there, in the API's
// memory while it is not, and in Redis again once it is back; the tills see no error at all.

const MAX_FAILURES = 5;
const DOWN_MS = soak(3_000, 30_000);
const REQUEST_TIMEOUT_MS = 10_000;
const PREFIX = 'loyalty:code-failures';

let database: TestDatabase;
let merchant: TestMerchant;
let tokens: string[];
let redisPort: number;
let redisServer: TestProcess | null = null;
let api: ApiProcess;

async function startRedis(): Promise<void> {
  redisServer = startProcess(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { env: {} },
  );
  await redisServer.waitForOutput(/Ready to accept connections/, 30_000);
}

async function stopRedis(): Promise<void> {
  if (!redisServer) return;
  redisServer.child.kill('SIGTERM');
  await redisServer.exited;
  redisServer = null;
}

/** The failures Redis holds for an API key (null: none there). */
async function failuresInRedis(keyId: string): Promise<string | null> {
  const client = new Redis(redisPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await client.connect();
    return await client.get(`${PREFIX}:${keyId}`);
  } finally {
    client.disconnect();
  }
}

/** Code lookups that cannot match (guesses) with `apiKey` until refused: the statuses, in order. */
async function guessCodes(apiKey: string, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const res = await fetch(`${api.base}/api/v1/integration/customers/resolve`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
      // Four customers hold a live code each: a guess hits one about once in 40,000 runs.
      body: JSON.stringify({ code: String(i).padStart(6, '0') }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    statuses.push(res.status);
  }
  return statuses;
}

beforeAll(async () => {
  database = await createTestDatabase({ poolMax: 4 });
  merchant = await createTestMerchant(database.db);
  tokens = [];
  for (let i = 0; i < 4; i += 1) {
    tokens.push((await createTestCustomer(database.db, { merchant, points: 10_000 })).token);
  }
  redisPort = await findFreePort();
  await startRedis();
  api = await ApiProcess.start({
    DATABASE_URL: database.url,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    CODE_RESOLVE_MAX_FAILURES: String(MAX_FAILURES),
  });
});

afterAll(async () => {
  await api?.kill();
  if (redisServer) await killProcess(redisServer);
  await database?.drop();
});

describe('Redis stopped and started under POS load', () => {
  it('moves the code-lookup limit to memory and back, and the tills see no error', async () => {
    const attempts: CommitAttempt[] = [];
    const errors: string[] = [];
    let lookups = 0;
    let isRunning = true;
    const target = { apiKey: merchant.apiKey, outletId: merchant.outletId, customerIds: [] };
    // Each till serves one customer: the customer shows a fresh code, the till resolves it, then
    // commits the purchase with it.
    const tills = tokens.map(async (token) => {
      while (isRunning) {
        try {
          const issued = await fetch(`${api.base}/api/v1/client/code`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}` },
            signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          });
          if (issued.status !== 200) throw new Error(`code: ${issued.status} ${await issued.text()}`);
          const { code } = (await issued.json()) as { code: string };
          const resolved = await fetch(`${api.base}/api/v1/integration/customers/resolve`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-api-key': merchant.apiKey },
            body: JSON.stringify({ code }),
            signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          });
          lookups += 1;
          if (resolved.status !== 200)
            throw new Error(`resolve: ${resolved.status} ${await resolved.text()}`);
          const orderId = `redis-${randomUUID()}`;
          const attempt: CommitAttempt = {
            key: randomUUID(),
            orderId,
            body: { customer: { code }, receipt: { total: 20_000 }, orderId, outletId: merchant.outletId },
            status: null,
            startedAt: 0,
            ms: 0,
          };
          Object.assign(attempt, await sendCommit(api.base, target, attempt, REQUEST_TIMEOUT_MS));
          attempts.push(attempt);
          if (attempt.status !== 201)
            throw new Error(`commit: ${attempt.status ?? attempt.error} ${attempt.code}`);
        } catch (error) {
          errors.push(error instanceof Error ? error.message : String(error));
        }
      }
    });
    const readyRedis = async () =>
      ((await getJson(api.base, '/ready')).body as { checks?: { redis?: string } }).checks?.redis;

    // Redis up: the limit counts there.
    const [keyUp, keyDown, keyBack] = await Promise.all(
      [1, 2, 3].map(() => createApiKey(database.db, { merchantId: merchant.merchantId })),
    );
    if (!keyUp || !keyDown || !keyBack) throw new Error('no API keys');
    await sleep(1_000);
    const guessesUp = await guessCodes(keyUp.key, MAX_FAILURES + 2);
    const inRedisUp = await failuresInRedis(keyUp.id);

    // Redis stopped: the limit holds in the API's memory; readiness reports Redis down, stays green.
    await stopRedis();
    const readyDown = await waitFor(readyRedis, (s) => s === 'down', 15_000, '/ready reporting Redis down');
    const guessesDown = await guessCodes(keyDown.key, MAX_FAILURES + 2);
    const readyStatusDown = (await getJson(api.base, '/ready')).status;
    await sleep(DOWN_MS);

    // Redis back: the limit counts there again.
    await startRedis();
    const startedAt = Date.now();
    await waitFor(readyRedis, (s) => s === 'ok', 30_000, '/ready reporting Redis ok');
    const recoveryMs = Date.now() - startedAt;
    const guessesBack = await guessCodes(keyBack.key, MAX_FAILURES + 2);
    const inRedisBack = await failuresInRedis(keyBack.id);
    const inRedisDown = await failuresInRedis(keyDown.id);
    await sleep(1_000);
    isRunning = false;
    await Promise.all(tills);

    const audit = await auditCommits(database.db, merchant.merchantId, attempts);
    const ledgerViolations = await countLedgerViolations(database.db);
    const limited = [...Array(MAX_FAILURES).fill(404), 429, 429];
    const limitFaults = [guessesUp, guessesDown, guessesBack].filter(
      (g) => JSON.stringify(g) !== JSON.stringify(limited),
    ).length;
    recordFaultRow({
      scenario: '3. Redis stopped and started under POS load',
      operations: attempts.length + lookups,
      answered: attempts.filter((a) => a.status === 201).length + lookups - errors.length,
      lost: audit.lost.length,
      duplicated: audit.duplicated.length,
      violations: errors.length + audit.partial.length + ledgerViolations + limitFaults,
      recoveryMs,
      notes:
        `Redis down ${DOWN_MS / 1000} s; ${errors.length} POS errors; code-lookup limit refused the ` +
        `${MAX_FAILURES + 1}th guess with Redis up, down (in memory) and back (in Redis again): ` +
        `${3 - limitFaults} of 3`,
    });

    expect(errors).toEqual([]);
    expect(attempts.length).toBeGreaterThan(0);
    expect(guessesUp).toEqual(limited);
    expect(inRedisUp).toBe(String(MAX_FAILURES));
    expect(readyDown).toBe('down');
    expect(readyStatusDown).toBe(200);
    expect(guessesDown).toEqual(limited);
    expect(guessesBack).toEqual(limited);
    expect(inRedisBack).toBe(String(MAX_FAILURES));
    // The failures counted while Redis was away stayed in memory.
    expect(inRedisDown).toBeNull();
    expect(audit).toMatchObject({ lost: [], partial: [], duplicated: [] });
    expect(ledgerViolations).toBe(0);
    expect(await api.stop()).toBe(0);
  });
});
