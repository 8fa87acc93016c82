import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createTestCustomer, createTestMerchant } from '../helpers/factories.js';
import {
  ApiProcess,
  auditCommits,
  countLedgerViolations,
  PosLoad,
  type PosTarget,
  retryUntilCommitted,
  sleep,
  soak,
  waitFor,
} from './harness.js';
import { recordFaultRow } from './report.js';

// Scenario 1: the API process is killed with SIGKILL while tills commit purchases, several times,
// and started again each time. A commit answered 201 is in the ledger exactly once; one that got no
// answer is absent or whole, never partial; its retry with the same Idempotency-Key has exactly one
// effect; the ledger's invariants hold.

const ROUNDS = soak(3, 10);
const LOAD_MS = soak(1_500, 6_000);

let database: TestDatabase;
let api: ApiProcess;
let target: PosTarget;
let merchantId: string;

beforeAll(async () => {
  database = await createTestDatabase({ poolMax: 4 });
  const merchant = await createTestMerchant(database.db);
  merchantId = merchant.merchantId;
  const customerIds: string[] = [];
  for (let i = 0; i < 8; i += 1) {
    customerIds.push((await createTestCustomer(database.db, { merchant, points: 10_000 })).customerId);
  }
  target = { apiKey: merchant.apiKey, outletId: merchant.outletId, customerIds };
  api = await ApiProcess.start({ DATABASE_URL: database.url });
});

afterAll(async () => {
  await api?.kill();
  await database?.drop();
});

describe('the API killed with SIGKILL under POS load', () => {
  it('keeps every answered commit exactly once and no commit half-written', async () => {
    const load = new PosLoad({ base: () => api.base, target, concurrency: 6, timeoutMs: 30_000 });
    load.start();
    let recoveryMs = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      // Let the tills get going (some commits answered) before the kill.
      const answeredBefore = load.attempts.filter((a) => a.status === 201).length;
      await waitFor(
        async () => load.attempts.filter((a) => a.status === 201).length,
        (n) => n >= answeredBefore + 5,
        60_000,
        'commits answered before the kill',
      );
      await sleep(LOAD_MS);
      await api.kill();
      await sleep(300);
      const restartedAt = Date.now();
      await api.restart();
      const firstAnswer = await waitFor(
        async () => load.attempts.find((a) => a.status === 201 && a.startedAt >= restartedAt),
        (a) => a !== undefined,
        60_000,
        'a commit answered after the restart',
      ).catch((e) => {
        throw e;
      });
      recoveryMs = Math.max(recoveryMs, (firstAnswer?.startedAt ?? 0) + (firstAnswer?.ms ?? 0) - restartedAt);
    }
    await sleep(500);
    await load.stop();

    const attempts = load.attempts;
    // In flight when the process died (the others were refused while it was down).
    const cutOff = attempts.filter((a) => a.status === null && a.error !== 'ECONNREFUSED').length;
    const answered = attempts.filter((a) => a.status === 201).length;
    const unsettled = load.unsettled();
    const other = attempts.filter((a) => a.status !== null && a.status !== 201 && a.status < 500);
    const before = await auditCommits(database.db, merchantId, attempts);

    // Every till retries what it got no answer for, with the same key and body.
    const retry = await retryUntilCommitted(api.base, target, unsettled);
    const after = await auditCommits(database.db, merchantId, attempts);
    // A few answered commits sent again replay their stored answer (same purchase, no new effect).
    const replays = attempts.filter((a) => a.status === 201).slice(0, 20);
    const replayed = replays.map((a) => ({ ...a }));
    const replay = await retryUntilCommitted(api.base, target, replayed);
    const replayMismatches = replayed.filter((a, i) => a.purchaseId !== replays[i]?.purchaseId).length;
    const afterReplay = await auditCommits(database.db, merchantId, attempts);
    const ledgerViolations = await countLedgerViolations(database.db);

    const violations =
      before.partial.length +
      after.partial.length +
      retry.failures.length +
      replay.failures.length +
      replayMismatches +
      other.length +
      ledgerViolations;
    recordFaultRow({
      scenario: '1. API SIGKILL under POS load',
      operations: attempts.length,
      answered,
      lost: after.lost.length,
      duplicated: afterReplay.duplicated.length,
      violations,
      recoveryMs,
      notes:
        `${ROUNDS} kills; ${cutOff} commits cut off mid-request, ${unsettled.length} unanswered in all ` +
        `(${load.refused} refused connections sent again while it was down): ` +
        `${before.complete} found whole, ${before.absent} absent, none partial; each retried with its ` +
        `Idempotency-Key: one purchase each`,
    });

    expect(other.map((a) => `${a.status} ${a.code}`)).toEqual([]);
    expect(cutOff, 'the kills cut commits off mid-request').toBeGreaterThan(0);
    expect(answered).toBeGreaterThan(0);
    expect(before.lost).toEqual([]);
    expect(before.partial).toEqual([]);
    expect(before.duplicated).toEqual([]);
    expect(retry.failures).toEqual([]);
    expect(after).toMatchObject({ lost: [], partial: [], duplicated: [], absent: 0 });
    expect(after.complete).toBe(unsettled.length);
    expect(replay.failures).toEqual([]);
    expect(replayMismatches).toBe(0);
    expect(afterReplay.duplicated).toEqual([]);
    expect(ledgerViolations).toBe(0);
    expect(await api.stop()).toBe(0);
  });
});
