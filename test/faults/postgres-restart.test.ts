import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../src/db/database.js';
import { type EmbeddedDatabase, findFreePort, startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { createTestCustomer, createTestMerchant } from '../helpers/factories.js';
import {
  ApiProcess,
  auditCommits,
  countLedgerViolations,
  getJson,
  PosLoad,
  type PosTarget,
  retryUntilCommitted,
  sleep,
  soak,
  waitFor,
} from './harness.js';
import { recordFaultRow } from './report.js';

// Scenario 2: PostgreSQL goes away under POS load, once for a fast restart and once for a stop of
// 10 s. The API keeps running and answers 503 database_unavailable quickly (no request hangs past
// the till's timeout), /ready turns red and then green, the pool reconnects by itself, and nothing is
// half-written. The database is this file's own server: stopping the shared one would hurt others.

/** How long a till waits for an answer: a request still open after it counts as hung. */
const REQUEST_TIMEOUT_MS = 10_000;
const OUTAGES = soak([0, 10_000], [0, 10_000, 0, 30_000, 0, 10_000]);

let dataDir: string;
let dbPort: number;
let server: EmbeddedDatabase | null = null;
let api: ApiProcess;
let target: PosTarget;
let merchantId: string;

const startServer = async () => {
  server = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'data'), port: dbPort });
  return server;
};

/** A short-lived pool for the test's own reads (the server restarts under the long-lived ones). */
async function withDb<T>(url: string, use: (db: Database) => Promise<T>): Promise<T> {
  const { db } = createDatabase({ connectionString: url, max: 2 });
  try {
    return await use(db);
  } finally {
    await db.destroy();
  }
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'loyalty-faults-pg-'));
  // As root, PostgreSQL runs as the `postgres` user, which must be able to enter this folder.
  chmodSync(dataDir, 0o755);
  dbPort = await findFreePort();
  const { url } = await startServer();
  await withDb(url, async (db) => {
    await migrateToLatest(db);
    const merchant = await createTestMerchant(db);
    merchantId = merchant.merchantId;
    const customerIds: string[] = [];
    for (let i = 0; i < 8; i += 1) {
      customerIds.push((await createTestCustomer(db, { merchant, points: 10_000 })).customerId);
    }
    target = { apiKey: merchant.apiKey, outletId: merchant.outletId, customerIds };
  });
  api = await ApiProcess.start({ DATABASE_URL: url });
});

afterAll(async () => {
  await api?.kill();
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('PostgreSQL restarted under POS load', () => {
  it('answers 503 quickly while it is away, recovers by itself, and writes nothing in part', async () => {
    const url = server?.url ?? '';
    const load = new PosLoad({ base: () => api.base, target, concurrency: 4, timeoutMs: REQUEST_TIMEOUT_MS });
    const readiness: Array<{ at: number; status: number | null }> = [];
    let isWatching = true;
    const watching = (async () => {
      while (isWatching) {
        const at = Date.now();
        const status = await getJson(api.base, '/ready', REQUEST_TIMEOUT_MS)
          .then((r) => r.status)
          .catch(() => null);
        readiness.push({ at, status });
        await sleep(200);
      }
    })();
    load.start();

    let recoveryMs = 0;
    const windows: Array<{ stoppedAt: number; startedAt: number }> = [];
    for (const downMs of OUTAGES) {
      const answeredBefore = load.attempts.filter((a) => a.status === 201).length;
      await waitFor(
        async () => load.attempts.filter((a) => a.status === 201).length,
        (n) => n >= answeredBefore + 5,
        60_000,
        'commits answered before the outage',
      );
      const stoppedAt = Date.now();
      await server?.stop();
      server = null;
      await sleep(downMs);
      await startServer();
      const startedAt = Date.now();
      windows.push({ stoppedAt, startedAt });
      const first = await waitFor(
        async () => load.attempts.find((a) => a.status === 201 && a.startedAt >= startedAt),
        (a) => a !== undefined,
        60_000,
        'a commit answered after the database came back',
      );
      recoveryMs = Math.max(recoveryMs, (first?.startedAt ?? 0) + (first?.ms ?? 0) - startedAt);
      await waitFor(
        async () => readiness.at(-1),
        (r) => r?.status === 200,
        30_000,
        '/ready green again',
      );
    }
    await sleep(500);
    await load.stop();
    isWatching = false;
    await watching;

    const attempts = load.attempts;
    const answered = attempts.filter((a) => a.status === 201).length;
    const refusedWithCode = attempts.filter((a) => a.status === 503);
    // Anything but 201 or 503 database_unavailable: a 500, another error, or no answer in time.
    const wrong = attempts.filter(
      (a) => !(a.status === 201 || (a.status === 503 && a.code === 'database_unavailable')),
    );
    const slowest503 = Math.max(0, ...refusedWithCode.map((a) => a.ms));
    // /ready was red during each outage and green at the end.
    const redWindows = windows.filter((w) =>
      readiness.some((r) => r.at >= w.stoppedAt && r.at <= w.startedAt + 1_000 && r.status === 503),
    ).length;
    const longOutages = OUTAGES.filter((ms) => ms > 0).length;

    const before = await withDb(url, (db) => auditCommits(db, merchantId, attempts));
    const retry = await retryUntilCommitted(api.base, target, load.unsettled());
    const { after, ledgerViolations } = await withDb(url, async (db) => ({
      after: await auditCommits(db, merchantId, attempts),
      ledgerViolations: await countLedgerViolations(db),
    }));
    const isAlive = api.isRunning;

    recordFaultRow({
      scenario: '2. PostgreSQL restart and 10 s stop under POS load',
      operations: attempts.length,
      answered,
      lost: after.lost.length,
      duplicated: after.duplicated.length,
      violations:
        wrong.length +
        before.partial.length +
        after.partial.length +
        retry.failures.length +
        ledgerViolations,
      recoveryMs,
      notes:
        `${OUTAGES.length} outages (${OUTAGES.map((ms) => (ms === 0 ? 'restart' : `${ms / 1000} s stop`)).join(', ')}); ` +
        `${refusedWithCode.length} answered 503 database_unavailable (slowest ${slowest503} ms), ` +
        `${wrong.length} other or hung; /ready red in ${redWindows} of ${OUTAGES.length} outages; ` +
        `503s retried: ${before.complete} had committed, ${before.absent} had not`,
    });

    expect(isAlive, 'the API process survived').toBe(true);
    expect(wrong.map((a) => `${a.status ?? a.error} ${a.code ?? ''} after ${a.ms} ms`)).toEqual([]);
    expect(refusedWithCode.length, 'requests met the outage').toBeGreaterThan(0);
    expect(slowest503).toBeLessThan(REQUEST_TIMEOUT_MS);
    // A stop of seconds is always seen by the readiness probe (a fast restart may slip between two).
    expect(redWindows).toBeGreaterThanOrEqual(longOutages);
    expect(readiness.at(-1)?.status).toBe(200);
    expect(before.lost).toEqual([]);
    expect(before.partial).toEqual([]);
    expect(retry.failures).toEqual([]);
    expect(after).toMatchObject({ lost: [], partial: [], duplicated: [], absent: 0 });
    expect(ledgerViolations).toBe(0);
    expect(await api.stop()).toBe(0);
    expect(api.process?.output()).not.toMatch(/Unhandled|uncaught|\n\s+at /i);
  });
});
