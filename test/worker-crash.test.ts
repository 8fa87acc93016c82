import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { WebhookReceiver } from './fakes/webhook-receiver.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestCustomer, createTestMerchant } from './helpers/factories.js';
import {
  countByWebhookId,
  createReceiverEndpoint,
  pause,
  purchaseCommittedPayload,
} from './helpers/outbox.js';

// The worker process as production runs it (`node --import tsx src/worker.ts`), killed with
// SIGKILL while deliveries are in flight: a second worker takes the dead one's claims back once
// their lease (5 s, the shortest allowed) has run out, and every event is delivered.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Worker {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const workers: Worker[] = [];
const databases: TestDatabase[] = [];
const receivers: WebhookReceiver[] = [];

afterEach(async () => {
  // Only the processes this file started, by their pid.
  for (const w of workers.splice(0)) {
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await w.exited;
  }
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});
afterAll(async () => {
  await Promise.all(databases.splice(0).map((d) => d.drop()));
});

function startWorker(databaseUrl: string, extraEnv: Record<string, string> = {}): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      WORKERS_ENABLED: '1',
      WORKER_PORT: '0',
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
      OUTBOX_LEASE_SECONDS: '5',
      OUTBOX_POLL_INTERVAL_MS: '100',
      LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const worker = { child, output: () => output, exited };
  workers.push(worker);
  return worker;
}

/** A database with a merchant, a customer, a receiver endpoint and `count` purchase events waiting. */
async function prepare(count: number) {
  const database = await createTestDatabase({ poolMax: 4 });
  databases.push(database);
  const merchant = await createTestMerchant(database.db);
  const { customerId } = await createTestCustomer(database.db, { merchant });
  const endpoint = await createReceiverEndpoint(database.db, {
    merchantId: merchant.merchantId,
    eventTypes: ['purchase.committed'],
  });
  receivers.push(endpoint.receiver);
  await database.db
    .insertInto('outbox_events')
    .values(
      Array.from({ length: count }, (_, i) => ({
        merchant_id: merchant.merchantId,
        type: 'purchase.committed',
        payload: JSON.stringify(purchaseCommittedPayload({ customerId, orderId: `crash-${i}` })),
      })),
    )
    .execute();
  const statuses = async () => {
    const rows = await database.db.selectFrom('outbox_events').select('status').execute();
    const counts: Record<string, number> = {};
    for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1;
    return counts;
  };
  return { database, merchant, endpoint, statuses };
}

describe('the worker process', () => {
  it('loses nothing when killed with SIGKILL mid-delivery: a second worker delivers every event', async () => {
    const total = 24;
    const { database, endpoint, statuses } = await prepare(total);
    const { receiver } = endpoint;
    // Slow answers keep deliveries in flight (the default concurrency is 16).
    receiver.setMode('slow:4000');

    const first = startWorker(database.url);
    await receiver.waitForDeliveries(8, 20_000).catch((error: unknown) => {
      throw new Error(`${String(error)}; worker output:\n${first.output()}`);
    });
    first.child.kill('SIGKILL');
    await first.exited;
    expect(first.child.signalCode).toBe('SIGKILL');

    // The dead worker's claims are still held: these deliveries were cut off mid-flight.
    const held = await database.db
      .selectFrom('outbox_events')
      .select('parent_id')
      .where('status', '=', 'processing')
      .where('target', '=', 'webhook')
      .execute();
    expect(held.length).toBeGreaterThan(0);
    const heldIds = new Set(held.map((e) => `evt_${e.parent_id}`));
    // Whatever reached the receiver before the second worker starts came from the first one.
    await pause(100);
    const beforeRestart = new Set(countByWebhookId(receiver).keys());
    receiver.setMode('ok');

    const second = startWorker(database.url);
    await expect
      .poll(statuses, { timeout: 25_000, interval: 250 })
      // Each purchase event and its webhook delivery, and the customer's joining (customer.created and
      // customer.enrolled, no subscriber).
      .toEqual({ delivered: total * 2 + 2 });
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);

    const counts = countByWebhookId(receiver);
    expect(counts.size).toBe(total);
    const inFlight = [...heldIds].filter((id) => beforeRestart.has(id));
    expect(inFlight.length).toBeGreaterThan(0);
    for (const [id, n] of counts) {
      // At-least-once: the deliveries cut off by the kill are made again, and nothing else is repeated.
      expect(n, `${id} delivered ${n} times`).toBe(inFlight.includes(id) ? 2 : 1);
    }
    expect(receiver.deliveries.every((d) => d.isVerified)).toBe(true);
  }, 40_000);

  it('delivers nothing while WORKERS_ENABLED is not 1, and says so', async () => {
    const { database, endpoint, statuses } = await prepare(3);
    const idle = startWorker(database.url, { WORKERS_ENABLED: '' });
    await expect.poll(() => idle.output(), { timeout: 15_000 }).toContain('WORKERS_ENABLED is not 1');
    // Ten poll intervals of a working worker (the test above delivers from the same setup).
    await pause(1_000);
    expect(idle.child.exitCode).toBeNull();
    // Three purchases and the customer's joining (customer.created, customer.enrolled).
    expect(await statuses()).toEqual({ pending: 5 });
    expect(endpoint.receiver.deliveries).toEqual([]);
    const attempts = await database.db.selectFrom('outbox_attempts').select('id').execute();
    expect(attempts).toEqual([]);
  });
});
