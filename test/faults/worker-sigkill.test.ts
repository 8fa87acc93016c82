import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createTestCustomer, createTestMerchant, type TestMerchant } from '../helpers/factories.js';
import { countByWebhookId, createReceiverEndpoint, type ReceiverEndpoint } from '../helpers/outbox.js';
import { killProcess, startProcess, type TestProcess } from '../helpers/process.js';
import { ApiProcess, getJson, PosLoad, sleep, soak, waitFor } from './harness.js';
import { recordFaultRow } from './report.js';

// Scenario 4: several worker processes deliver webhooks to a slow receiver while tills commit, and
// one worker after another is killed with SIGKILL mid-delivery. No event is lost; an event reaches
// the receiver again only through a new claim of it (after a kill, or a lease that ran out while a
// worker stalled), with the same webhook-id; the events of an
// endpoint that always fails go dead exactly once each, and loyalty_outbox_dead_total says so.

const WORKERS = 3;
const KILLS = soak(3, 8);
const PURCHASES = soak(60, 240);
const SLOW_MS = 2_000;
/** Attempts an event gets: the first and one per retry (1 s apart). */
const RETRY_SCHEDULE = '1,1,1';

let database: TestDatabase;
let merchant: TestMerchant;
let customerIds: string[];
let ok: ReceiverEndpoint;
let failing: ReceiverEndpoint;
let api: ApiProcess;
const workers: TestProcess[] = [];

function startWorker(): TestProcess {
  const worker = startProcess(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    env: {
      DATABASE_URL: database.url,
      DATABASE_POOL_MAX: '4',
      WORKERS_ENABLED: '1',
      WORKER_PORT: '0',
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
      // The shortest lease allowed: a dead worker's claims go back to the queue after 5 s.
      OUTBOX_LEASE_SECONDS: '5',
      OUTBOX_POLL_INTERVAL_MS: '100',
      OUTBOX_CONCURRENCY: '2',
      OUTBOX_RETRY_SCHEDULE: RETRY_SCHEDULE,
      LOG_LEVEL: 'warn',
    },
  });
  workers.push(worker);
  return worker;
}

const isAlive = (p: TestProcess) => p.child.exitCode === null && p.child.signalCode === null;

beforeAll(async () => {
  database = await createTestDatabase({ poolMax: 4 });
  merchant = await createTestMerchant(database.db);
  customerIds = [];
  for (let i = 0; i < 4; i += 1) {
    customerIds.push((await createTestCustomer(database.db, { merchant, points: 10_000 })).customerId);
  }
  const options = { merchantId: merchant.merchantId, eventTypes: ['purchase.committed'] };
  ok = await createReceiverEndpoint(database.db, { ...options, mode: `slow:${SLOW_MS}` });
  failing = await createReceiverEndpoint(database.db, { ...options, mode: 'status:500' });
  api = await ApiProcess.start({ DATABASE_URL: database.url });
});

afterAll(async () => {
  await Promise.all(workers.map((w) => killProcess(w)));
  await api?.kill();
  await ok?.receiver.close();
  await failing?.receiver.close();
  await database?.drop();
});

describe('workers killed with SIGKILL mid-delivery', () => {
  it('lose no event, repeat a delivery only by a new claim, and count the dead exactly', async () => {
    const target = { apiKey: merchant.apiKey, outletId: merchant.outletId, customerIds };
    const load = new PosLoad({
      base: () => api.base,
      target,
      concurrency: 2,
      timeoutMs: 30_000,
      limit: PURCHASES,
    });
    load.start();
    for (let i = 0; i < WORKERS; i += 1) startWorker();

    // Deliveries the receiver had taken and not yet answered when a worker died (of any worker).
    const cutOff = new Map<string, number>();
    let lastKillAt = 0;
    for (let kill = 0; kill < KILLS; kill += 1) {
      const seen = ok.receiver.deliveries.length;
      await ok.receiver.waitForDeliveries(seen + 2, 120_000);
      const alive = workers.filter(isAlive);
      const victim = alive[kill % alive.length] as TestProcess;
      victim.child.kill('SIGKILL');
      await victim.exited;
      lastKillAt = Date.now();
      for (const d of ok.receiver.deliveries) {
        if (d.receivedAt.getTime() > lastKillAt - SLOW_MS - 200) {
          const id = String(d.headers['webhook-id']);
          cutOff.set(id, (cutOff.get(id) ?? 0) + 1);
        }
      }
      startWorker();
      await sleep(500);
    }
    await load.finished();
    const answered = load.attempts.filter((a) => a.status === 201).length;

    // Everything settles: delivered, or dead for the endpoint that always fails.
    const unsettled = () =>
      database.db
        .selectFrom('outbox_events')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('status', 'in', ['pending', 'processing'])
        .executeTakeFirstOrThrow()
        .then((r) => Number(r.n));
    await waitFor(unsettled, (n) => n === 0, 120_000, 'every event delivered or dead');
    const recoveryMs = Date.now() - lastKillAt;

    const { rows: events } = await sql<{ id: number }>`
      select id from outbox_events where type = 'purchase.committed' and target is null`.execute(database.db);
    const expected = events.map((e) => `evt_${e.id}`);
    const { rows: webhooks } = await sql<{ endpoint_id: string; status: string; n: number }>`
      select endpoint_id, status, count(*)::int as n from outbox_events where target = 'webhook'
      group by endpoint_id, status`.execute(database.db);
    const statusOf = (endpointId: string, status: string) =>
      webhooks.find((w) => w.endpoint_id === endpointId && w.status === status)?.n ?? 0;
    const { rows: counters } = await sql<{ value: number }>`
      select value from counters where name = 'outbox_dead_total'`.execute(database.db);
    const deadCounter = Number(counters[0]?.value ?? 0);
    const metrics = String((await getJson(api.base, '/metrics')).body);
    const deadMetric = Number(/^loyalty_outbox_dead_total (\d+)$/m.exec(metrics)?.[1] ?? -1);

    // Each claim of a delivery (the attempt number counts them) may reach the receiver once.
    const { rows: claims } = await sql<{ parent_id: number; attempts: number }>`
      select parent_id, attempts from outbox_events
      where target = 'webhook' and endpoint_id = ${ok.endpointId}`.execute(database.db);
    const claimsOf = new Map(claims.map((c) => [`evt_${c.parent_id}`, c.attempts]));
    const received = countByWebhookId(ok.receiver);
    const lost = expected.filter((id) => !received.has(id)).length + statusOf(ok.endpointId, 'dead');
    let duplicated = 0;
    const unexplained: string[] = [];
    for (const [id, n] of received) {
      duplicated += n - 1;
      // At-least-once: a delivery is repeated only by a new claim, after a kill cut it off or a lease
      // ran out (a worker stalled past it); never twice within one claim, never an unknown id.
      if (n > (claimsOf.get(id) ?? 0)) unexplained.push(`${id} x${n}, ${claimsOf.get(id) ?? 0} claims`);
    }
    const failingIds = new Set(countByWebhookId(failing.receiver).keys());
    const unsigned = [...ok.receiver.deliveries, ...failing.receiver.deliveries].filter((d) => !d.isVerified);
    const deadMismatch =
      Math.abs(statusOf(failing.endpointId, 'dead') - answered) +
      Math.abs(deadCounter - answered) +
      Math.abs(deadMetric - answered);

    recordFaultRow({
      scenario: '4. Worker SIGKILL mid-delivery',
      operations: expected.length,
      answered: statusOf(ok.endpointId, 'delivered'),
      lost,
      duplicated,
      violations: unexplained.length + unsigned.length + deadMismatch,
      recoveryMs,
      notes:
        `${WORKERS} workers, ${KILLS} kills, receiver answers after ${SLOW_MS / 1000} s; ` +
        `${cutOff.size} deliveries in flight at a kill, ${duplicated} delivered again (same webhook-id, ` +
        `each by a new claim); ` +
        `an always-failing endpoint: ${deadCounter} dead for ${answered} events ` +
        `(loyalty_outbox_dead_total ${deadMetric}); recovery: last kill to an empty queue`,
    });

    expect(answered).toBeGreaterThan(0);
    expect(expected).toHaveLength(answered);
    expect(lost).toBe(0);
    expect(statusOf(ok.endpointId, 'delivered')).toBe(answered);
    expect(cutOff.size, 'the kills cut deliveries off').toBeGreaterThan(0);
    expect(unexplained).toEqual([]);
    expect(unsigned).toEqual([]);
    expect(failingIds.size).toBe(answered);
    expect(statusOf(failing.endpointId, 'dead')).toBe(answered);
    expect(deadCounter).toBe(answered);
    expect(deadMetric).toBe(answered);
    for (const worker of workers.filter(isAlive)) {
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
    }
  });
});
