import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeTelegram,
  type FakeTelegramCall,
  startFakeTelegram,
} from '../../test/fakes/telegram-bot-api.js';
import type { WebhookReceiver } from '../../test/fakes/webhook-receiver.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { createTestCustomer, createTestMerchant, nextPhone } from '../../test/helpers/factories.js';
import {
  adminRequest,
  commitPurchaseViaApi,
  countByWebhookId,
  createReceiverEndpoint,
  pause,
  purchaseCommittedPayload,
  type RunningDispatcher,
  startTestDispatcher,
} from '../../test/helpers/outbox.js';
import { type Config, loadConfig } from '../config.js';
import { createDatabase } from '../db/database.js';
import { SecretBox } from '../lib/crypto.js';
import { setSwitch } from '../modules/admin/switches.service.js';
import { createCustomer } from '../modules/customers/customers.service.js';
import { connectMerchantBot } from '../modules/telegram/telegram.service.js';
import { closeWebhookAgents } from '../modules/webhooks/webhooks.delivery.js';
import type { OutboxRoutes } from './outbox.dispatcher.js';
import {
  enqueueEvent,
  outboxCounts,
  purgeDeliveredEvents,
  reclaimExpiredLeases,
  recordAttempt,
} from './outbox.queue.js';

// The outbox end to end: purchases committed through the integration API, a real OutboxDispatcher
// with the production routes, loopback webhook receivers that verify Standard Webhooks signatures,
// and the fake Telegram Bot API. The retry schedule is compressed to 0.2 s steps.

const ADMIN_TOKEN = 'outbox-test-operator-token';
let t: TestApp;
let fake: FakeTelegram;
let env: Record<string, string>;

const running: RunningDispatcher[] = [];
const receivers: WebhookReceiver[] = [];
// Dispatchers whose test expects processing errors in their log.
const errorsExpected = new Set<RunningDispatcher>();

beforeAll(async () => {
  fake = await startFakeTelegram();
  env = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
    OUTBOX_RETRY_SCHEDULE: '0.2,0.2,0.2',
    OUTBOX_POLL_INTERVAL_MS: '50',
    TELEGRAM_API_BASE_URL: fake.baseUrl,
    ADMIN_API_TOKEN: ADMIN_TOKEN,
  };
  t = await createTestApp({ env, listen: true });
});

afterEach(async () => {
  const stopped = running.splice(0);
  await Promise.all(stopped.map((d) => d.stop()));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
  // Nothing left over may be retried into the next test (against a receiver that is gone).
  await sql`delete from outbox_events where status in ('pending', 'processing')`.execute(t.db);
  // Through setSwitch, so the app's switch board hears of it (NOTIFY) like every replica would.
  await setSwitch(t.db, { name: 'outbox_paused', enabled: false });
  await sql`update merchants set outbox_paused_at = null where outbox_paused_at is not null`.execute(t.db);
  for (const d of stopped) {
    if (!errorsExpected.has(d)) expect(d.log.errors(), 'dispatcher logged errors').toEqual([]);
  }
  errorsExpected.clear();
});

afterAll(async () => {
  await closeWebhookAgents();
  await t.close();
  await fake.close();
});

function configWith(extra: Record<string, string>): Config {
  return loadConfig({ ...env, ...extra }).config;
}

async function startDispatcher(
  options: {
    config?: Config;
    db?: TestApp['db'];
    isStarted?: boolean;
    wrapRoutes?: (r: OutboxRoutes) => OutboxRoutes;
  } = {},
): Promise<RunningDispatcher> {
  const d = await startTestDispatcher({
    db: options.db ?? t.db,
    url: t.url,
    config: options.config ?? t.config,
    isStarted: options.isStarted,
    wrapRoutes: options.wrapRoutes,
  });
  running.push(d);
  return d;
}

async function endpointFor(merchantId: string, eventTypes: string[] = ['purchase.committed']) {
  const created = await createReceiverEndpoint(t.db, { merchantId, eventTypes });
  receivers.push(created.receiver);
  return created;
}

/** The domain event a committed purchase wrote (target null). */
async function purchaseEvent(purchaseId: string) {
  return t.db
    .selectFrom('outbox_events')
    .selectAll()
    .where('type', '=', 'purchase.committed')
    .where('target', 'is', null)
    .where(sql<string>`payload->>'purchaseId'`, '=', purchaseId)
    .executeTakeFirstOrThrow();
}

/** The webhook deliveries (child events) made for one endpoint, oldest first. */
function deliveriesTo(endpointId: string) {
  return t.db
    .selectFrom('outbox_events')
    .selectAll()
    .where('endpoint_id', '=', endpointId)
    .orderBy('id')
    .execute();
}

function eventById(id: number) {
  return t.db.selectFrom('outbox_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

function attemptsOf(eventId: number) {
  return t.db
    .selectFrom('outbox_attempts')
    .selectAll()
    .where('event_id', '=', eventId)
    .orderBy('id')
    .execute();
}

/** Polls until the endpoint has `count` deliveries, all in `status`; returns them. */
async function waitForDeliveryStatus(endpointId: string, status: string, count = 1, timeout = 10_000) {
  await expect
    .poll(async () => (await deliveriesTo(endpointId)).map((e) => e.status), { timeout, interval: 50 })
    .toEqual(Array.from({ length: count }, () => status));
  return deliveriesTo(endpointId);
}

async function customerOf(merchant: Awaited<ReturnType<typeof createTestMerchant>>) {
  return createTestCustomer(t.db, { merchant });
}

describe('webhook delivery', () => {
  it('delivers a committed purchase signed the Standard Webhooks way; a failing receiver is retried until it recovers', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const { receiver, endpointId } = await endpointFor(merchant.merchantId);
    // Two failures answered at once, then a success that takes a measurable while.
    receiver.setMode('slow:120');
    receiver.failNext(2, 503);
    await startDispatcher();

    const purchase = await commitPurchaseViaApi(t.app, merchant, { customerId, total: 25_000 });
    const received = await receiver.waitForDeliveries(3, 10_000);
    const [delivery] = await waitForDeliveryStatus(endpointId, 'delivered');

    expect(received.map((d) => d.status)).toEqual([503, 503, 200]);
    for (const d of received) {
      expect(d.isVerified, d.verifyError).toBe(true);
      expect(d.headers['webhook-timestamp']).toMatch(/^\d{10}$/);
    }
    const parent = await purchaseEvent(purchase.id);
    // One id for the event, the same on every retry: receivers de-duplicate on it.
    expect(new Set(received.map((d) => d.headers['webhook-id']))).toEqual(new Set([`evt_${parent.id}`]));
    expect(received[2]?.body).toMatchObject({
      type: 'purchase.committed',
      data: { purchaseId: purchase.id, orderId: purchase.orderId, customerId, total: 25_000 },
    });

    expect(delivery).toMatchObject({ parent_id: parent.id, attempts: 3, last_error: null });
    expect(delivery?.delivered_at).toBeInstanceOf(Date);
    const attempts = await attemptsOf(delivery?.id ?? 0);
    expect(attempts).toEqual([
      expect.objectContaining({
        attempt: 1,
        status_code: 503,
        result: 'http_error',
        error: 'HTTP 503',
        response_excerpt: 'failing on purpose (503)',
      }),
      expect.objectContaining({ attempt: 2, status_code: 503, result: 'http_error' }),
      expect.objectContaining({
        attempt: 3,
        status_code: 200,
        result: 'ok',
        response_excerpt: '{"ok":true}',
      }),
    ]);
    // Latency is recorded: the successful answer took at least the receiver's 120 ms.
    expect(attempts[2]?.duration_ms).toBeGreaterThanOrEqual(100);
    for (const a of attempts) expect(a.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it('marks an event dead when the receiver stays down for the whole schedule, counting it once', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const { receiver, endpointId } = await endpointFor(merchant.merchantId);
    receiver.setMode('down');
    const before = await outboxCounts(t.db);
    await startDispatcher();

    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 10_000 });
    const [dead] = await waitForDeliveryStatus(endpointId, 'dead');
    const schedule = t.config.OUTBOX_RETRY_SCHEDULE;
    expect(schedule).toHaveLength(3);
    expect(dead?.attempts).toBe(1 + schedule.length);
    expect(dead?.dead_at).toBeInstanceOf(Date);
    expect(dead?.last_error).toEqual(expect.any(String));
    expect(dead?.last_error).not.toBe('');

    // No more tries after death, and the counter moved by exactly one.
    await pause(300);
    const attempts = await attemptsOf(dead?.id ?? 0);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
    expect(attempts.every((a) => a.result === 'error' && a.status_code === null)).toBe(true);
    const after = await outboxCounts(t.db);
    expect(after.deadTotal).toBe(before.deadTotal + 1);
    expect(after.dead).toBe(before.dead + 1);
    // The API's /metrics reads the same figure (the runbook's loyalty_outbox_dead_total).
    const metrics = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toContain(`\nloyalty_outbox_dead_total ${after.deadTotal}\n`);
    expect(receiver.deliveries).toEqual([]);
  });

  it('disables an endpoint that answers 410 Gone, and sends it nothing more', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const { receiver, endpointId } = await endpointFor(merchant.merchantId);
    receiver.setMode('status:410');
    await startDispatcher();

    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 10_000 });
    const [dead] = await waitForDeliveryStatus(endpointId, 'dead');
    // 410 is final: no retry.
    expect(dead?.attempts).toBe(1);
    expect(await attemptsOf(dead?.id ?? 0)).toEqual([
      expect.objectContaining({ status_code: 410, result: 'http_error' }),
    ]);
    await expect
      .poll(async () =>
        t.db
          .selectFrom('webhook_endpoints')
          .select(['enabled', 'disabled_reason'])
          .where('id', '=', endpointId)
          .executeTakeFirstOrThrow(),
      )
      .toEqual({ enabled: false, disabled_reason: 'HTTP 410 Gone' });

    const next = await commitPurchaseViaApi(t.app, merchant, { customerId, total: 10_000 });
    await expect.poll(async () => (await purchaseEvent(next.id)).status).toBe('delivered');
    expect(await deliveriesTo(endpointId)).toHaveLength(1);
    expect(receiver.deliveries).toHaveLength(1);
  });

  it('waits at least Retry-After after a 429 before the next attempt', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const { receiver, endpointId } = await endpointFor(merchant.merchantId);
    // The schedule alone would retry after 0.2 s (±20%); the receiver asks for 1 s (honoured up to
    // the schedule's longest step, 2 s here).
    receiver.setMode('status:429:retry-after=1');
    await startDispatcher({ config: configWith({ OUTBOX_RETRY_SCHEDULE: '0.2,0.2,2' }) });

    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 10_000 });
    await receiver.waitForDeliveries(1);
    receiver.setMode('ok');
    const [first, second] = await receiver.waitForDeliveries(2, 10_000);
    const [delivered] = await waitForDeliveryStatus(endpointId, 'delivered');

    expect([first?.status, second?.status]).toEqual([429, 200]);
    const gap = (second?.receivedAt.getTime() ?? 0) - (first?.receivedAt.getTime() ?? 0);
    expect(gap).toBeGreaterThanOrEqual(1_000);
    expect(await attemptsOf(delivered?.id ?? 0)).toEqual([
      expect.objectContaining({ status_code: 429, result: 'rate_limited' }),
      expect.objectContaining({ status_code: 200, result: 'ok' }),
    ]);
  });

  it('delivers only the event types an endpoint subscribed to', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const committed = await endpointFor(merchant.merchantId, ['purchase.committed']);
    const refunded = await endpointFor(merchant.merchantId, ['purchase.refunded']);
    await startDispatcher();

    const purchase = await commitPurchaseViaApi(t.app, merchant, { customerId, total: 10_000 });
    await committed.receiver.waitForDeliveries(1);
    const parent = await purchaseEvent(purchase.id);
    await expect.poll(async () => (await eventById(parent.id)).status).toBe('delivered');
    const children = await t.db
      .selectFrom('outbox_events')
      .select(['endpoint_id', 'type'])
      .where('parent_id', '=', parent.id)
      .execute();
    expect(children).toEqual([{ endpoint_id: committed.endpointId, type: 'purchase.committed' }]);

    // The refund goes to the other endpoint only.
    const refund = await t.app.inject({
      method: 'POST',
      url: `/api/v1/integration/purchases/${purchase.id}/refunds`,
      headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': `refund-${purchase.id}` },
      payload: { outletId: merchant.outletId },
    });
    expect(refund.statusCode).toBe(201);
    const [got] = await refunded.receiver.waitForDeliveries(1);
    expect(got?.body).toMatchObject({ type: 'purchase.refunded', data: { purchaseId: purchase.id } });
    await waitForDeliveryStatus(refunded.endpointId, 'delivered');
    await pause(200);
    expect(committed.receiver.deliveries.map((d) => (d.body as { type: string }).type)).toEqual([
      'purchase.committed',
    ]);
    expect(refunded.receiver.deliveries).toHaveLength(1);
  });

  it('re-validates payloads: a row that breaks its schema goes dead with a clear error, undelivered', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const { receiver, endpointId } = await endpointFor(merchant.merchantId);
    const before = await outboxCounts(t.db);
    // Rows written by an older (or buggy) release: a required field is missing, a type is unknown.
    const invalid = await enqueueEvent(t.db, {
      merchantId: merchant.merchantId,
      type: 'purchase.committed',
      payload: { ...purchaseCommittedPayload({ customerId, orderId: 'bad-1' }), total: '100.50' },
    });
    const invalidDelivery = await enqueueEvent(t.db, {
      merchantId: merchant.merchantId,
      type: 'purchase.committed',
      payload: { orderId: 'bad-2', customerId },
      target: 'webhook',
      endpointId,
    });
    const unknown = await enqueueEvent(t.db, {
      merchantId: merchant.merchantId,
      type: 'purchase.exploded',
      payload: {},
    });
    const valid = await enqueueEvent(t.db, {
      merchantId: merchant.merchantId,
      type: 'purchase.committed',
      payload: purchaseCommittedPayload({ customerId, orderId: 'good-1' }),
    });
    await startDispatcher();

    await receiver.waitForDeliveries(1);
    await expect
      .poll(async () =>
        Promise.all(
          [invalid, invalidDelivery, unknown, valid].map(async (id) => (await eventById(id)).status),
        ),
      )
      .toEqual(['dead', 'dead', 'dead', 'delivered']);
    expect((await eventById(invalid)).last_error).toMatch(
      /^invalid purchase\.committed payload: total: .*number/,
    );
    expect((await eventById(invalidDelivery)).last_error).toMatch(
      /^invalid purchase\.committed payload: purchaseId: /,
    );
    expect((await eventById(unknown)).last_error).toBe('unknown event type purchase.exploded');
    for (const id of [invalid, invalidDelivery, unknown]) {
      expect((await eventById(id)).attempts).toBe(1);
      expect(await attemptsOf(id)).toEqual([expect.objectContaining({ result: 'error', status_code: null })]);
    }
    // Only the valid event reached the merchant.
    await pause(200);
    expect(receiver.deliveries.map((d) => d.headers['webhook-id'])).toEqual([`evt_${valid}`]);
    expect((await outboxCounts(t.db)).deadTotal).toBe(before.deadTotal + 3);
  });
});

describe('operator controls', () => {
  it('holds every event while delivery is paused globally (admin API), and delivers them on resume', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const { receiver, endpointId } = await endpointFor(merchant.merchantId);
    const d = await startDispatcher();

    const paused = await adminRequest(t.app, {
      method: 'POST',
      url: '/api/v1/admin/outbox/pause',
      token: ADMIN_TOKEN,
      payload: {},
    });
    expect(paused.statusCode).toBe(200);
    expect(paused.json()).toEqual({ paused: true, merchantId: null });
    // The admin view follows within moments (how soon: see admin.test.ts).
    await expect
      .poll(async () => {
        const state = await adminRequest(t.app, {
          method: 'GET',
          url: '/api/v1/admin/outbox',
          token: ADMIN_TOKEN,
        });
        return state.json().paused.global;
      })
      .toBe(true);

    const purchase = await commitPurchaseViaApi(t.app, merchant, { customerId, total: 10_000 });
    const parent = await purchaseEvent(purchase.id);
    // Nothing is claimable, and the running loop (polling every 50 ms) attempts nothing either.
    expect(await d.dispatcher.runOnce()).toBe(0);
    await pause(400);
    expect(await eventById(parent.id)).toMatchObject({ status: 'pending', attempts: 0 });
    expect(await attemptsOf(parent.id)).toEqual([]);
    expect(await deliveriesTo(endpointId)).toEqual([]);
    expect(receiver.deliveries).toEqual([]);

    const resumed = await adminRequest(t.app, {
      method: 'POST',
      url: '/api/v1/admin/outbox/resume',
      token: ADMIN_TOKEN,
      payload: {},
    });
    expect(resumed.json()).toEqual({ paused: false, merchantId: null });
    await receiver.waitForDeliveries(1);
    await waitForDeliveryStatus(endpointId, 'delivered');
  });

  it('pausing one merchant holds only that merchant’s events', async () => {
    const held = await createTestMerchant(t.db, { name: 'Held' });
    const other = await createTestMerchant(t.db, { name: 'Other' });
    const heldCustomer = await customerOf(held);
    const otherCustomer = await customerOf(other);
    const heldEndpoint = await endpointFor(held.merchantId);
    const otherEndpoint = await endpointFor(other.merchantId);
    await startDispatcher();

    const paused = await adminRequest(t.app, {
      method: 'POST',
      url: '/api/v1/admin/outbox/pause',
      token: ADMIN_TOKEN,
      payload: { merchantId: held.merchantId },
    });
    expect(paused.json()).toEqual({ paused: true, merchantId: held.merchantId });
    const state = await adminRequest(t.app, {
      method: 'GET',
      url: '/api/v1/admin/outbox',
      token: ADMIN_TOKEN,
    });
    expect(state.json().paused.merchants).toEqual([
      expect.objectContaining({ id: held.merchantId, name: 'Held' }),
    ]);

    const heldPurchase = await commitPurchaseViaApi(t.app, held, {
      customerId: heldCustomer.customerId,
      total: 10_000,
    });
    await commitPurchaseViaApi(t.app, other, { customerId: otherCustomer.customerId, total: 10_000 });
    // The other merchant's event goes through: the dispatcher is running rounds.
    await otherEndpoint.receiver.waitForDeliveries(1);
    await waitForDeliveryStatus(otherEndpoint.endpointId, 'delivered');
    await pause(200);
    const heldEvent = await purchaseEvent(heldPurchase.id);
    expect(heldEvent).toMatchObject({ status: 'pending', attempts: 0 });
    expect(await attemptsOf(heldEvent.id)).toEqual([]);
    expect(heldEndpoint.receiver.deliveries).toEqual([]);

    const resumed = await adminRequest(t.app, {
      method: 'POST',
      url: '/api/v1/admin/outbox/resume',
      token: ADMIN_TOKEN,
      payload: { merchantId: held.merchantId },
    });
    expect(resumed.statusCode).toBe(200);
    await heldEndpoint.receiver.waitForDeliveries(1);
    await waitForDeliveryStatus(heldEndpoint.endpointId, 'delivered');
  });

  it('retries one dead event with the same webhook-id', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const { receiver, endpointId } = await endpointFor(merchant.merchantId);
    receiver.setMode('status:500');
    await startDispatcher();

    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 10_000 });
    const [dead] = await waitForDeliveryStatus(endpointId, 'dead');
    const deadTotal = (await outboxCounts(t.db)).deadTotal;
    expect(receiver.deliveries).toHaveLength(4);
    receiver.setMode('ok');

    const retried = await adminRequest(t.app, {
      method: 'POST',
      url: `/api/v1/admin/outbox/events/${dead?.id}/retry`,
      token: ADMIN_TOKEN,
    });
    expect(retried.statusCode).toBe(200);
    expect(retried.json()).toEqual({ retried: true });
    await receiver.waitForDeliveries(5);
    await waitForDeliveryStatus(endpointId, 'delivered');

    expect(new Set(receiver.deliveries.map((d) => d.headers['webhook-id'])).size).toBe(1);
    expect(receiver.deliveries.map((d) => d.status)).toEqual([500, 500, 500, 500, 200]);
    expect((await attemptsOf(dead?.id ?? 0)).map((a) => a.result)).toEqual([
      'http_error',
      'http_error',
      'http_error',
      'http_error',
      'ok',
    ]);
    // A delivered event cannot be retried; the ever-dead counter does not go down.
    const again = await adminRequest(t.app, {
      method: 'POST',
      url: `/api/v1/admin/outbox/events/${dead?.id}/retry`,
      token: ADMIN_TOKEN,
    });
    expect(again.statusCode).toBe(404);
    expect((await outboxCounts(t.db)).deadTotal).toBe(deadTotal);
  });

  it('replays the dead events of one merchant since a time, and nothing else', async () => {
    const merchant = await createTestMerchant(t.db);
    const other = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const otherCustomer = await customerOf(other);
    const mine = await endpointFor(merchant.merchantId);
    const theirs = await endpointFor(other.merchantId);
    mine.receiver.setMode('status:500');
    theirs.receiver.setMode('status:500');
    await startDispatcher();

    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 10_000 });
    const [early] = await waitForDeliveryStatus(mine.endpointId, 'dead');
    const { rows } = await sql<{ now: Date }>`select now() as now`.execute(t.db);
    const since = rows[0]?.now ?? new Date();

    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 20_000 });
    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 30_000 });
    await commitPurchaseViaApi(t.app, other, { customerId: otherCustomer.customerId, total: 10_000 });
    const dead = await waitForDeliveryStatus(mine.endpointId, 'dead', 3);
    await waitForDeliveryStatus(theirs.endpointId, 'dead');
    const deadTotal = (await outboxCounts(t.db)).deadTotal;
    mine.receiver.setMode('ok');
    theirs.receiver.setMode('ok');

    const replayed = await adminRequest(t.app, {
      method: 'POST',
      url: '/api/v1/admin/outbox/replay',
      token: ADMIN_TOKEN,
      payload: { merchantId: merchant.merchantId, since: since.toISOString() },
    });
    expect(replayed.statusCode).toBe(200);
    expect(replayed.json()).toEqual({ replayed: 2 });

    const late = dead.filter((e) => e.id !== early?.id).map((e) => e.id);
    await expect
      .poll(async () => (await deliveriesTo(mine.endpointId)).map((e) => [e.id, e.status]))
      .toEqual([
        [early?.id, 'dead'],
        [late[0], 'delivered'],
        [late[1], 'delivered'],
      ]);
    const okIds = mine.receiver.deliveries
      .filter((d) => d.status === 200)
      .map((d) => d.headers['webhook-id']);
    const lateParents = await Promise.all(late.map(async (id) => `evt_${(await eventById(id)).parent_id}`));
    expect(okIds.sort()).toEqual(lateParents.sort());
    await pause(200);
    expect((await deliveriesTo(theirs.endpointId)).map((e) => e.status)).toEqual(['dead']);
    expect(theirs.receiver.deliveries.every((d) => d.status === 500)).toBe(true);
    // Replay does not lower the ever-dead counter.
    expect((await outboxCounts(t.db)).deadTotal).toBe(deadTotal);
  });

  it('purges delivered events older than the retention period, and only those', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const payload = purchaseCommittedPayload({ customerId, orderId: 'purge' });
    const make = async (
      status: 'delivered' | 'dead' | 'pending',
      daysAgo: number,
      parentId?: number,
    ): Promise<number> => {
      const id = await enqueueEvent(t.db, {
        merchantId: merchant.merchantId,
        type: 'purchase.committed',
        payload,
      });
      const at = sql<Date>`now() - make_interval(days => ${daysAgo})`;
      await t.db
        .updateTable('outbox_events')
        .set({
          status,
          created_at: at,
          delivered_at: status === 'delivered' ? at : null,
          dead_at: status === 'dead' ? at : null,
          parent_id: parentId ?? null,
        })
        .where('id', '=', id)
        .execute();
      return id;
    };
    const oldDelivered = await make('delivered', 20);
    await recordAttempt(t.db, {
      eventId: oldDelivered,
      attempt: 1,
      result: { result: 'ok', statusCode: 200, durationMs: 5 },
    });
    const recentDelivered = await make('delivered', 1);
    const oldDead = await make('dead', 20);
    const oldPending = await make('pending', 20);
    // A parent stays while one of its deliveries is not delivered; one whose children all are goes.
    const parentWithPending = await make('delivered', 20);
    const pendingChild = await make('pending', 20, parentWithPending);
    const parentDone = await make('delivered', 20);
    const doneChild = await make('delivered', 20, parentDone);

    const purged = await purgeDeliveredEvents(t.db, { olderThanDays: 14 });
    expect(purged).toBe(3);
    const left = await t.db
      .selectFrom('outbox_events')
      .select('id')
      .where('merchant_id', '=', merchant.merchantId)
      .execute();
    const leftIds = new Set(left.map((r) => r.id));
    for (const id of [recentDelivered, oldDead, oldPending, parentWithPending, pendingChild]) {
      expect(leftIds.has(id), `event ${id} kept`).toBe(true);
    }
    for (const id of [oldDelivered, parentDone, doneChild])
      expect(leftIds.has(id), `event ${id} purged`).toBe(false);
    expect(await attemptsOf(oldDelivered)).toEqual([]);
  });
});

describe('several dispatchers', () => {
  it('two dispatchers on one database deliver each of many events exactly once', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await customerOf(merchant);
    const { receiver, endpointId } = await endpointFor(merchant.merchantId);
    receiver.setMode('slow:15');
    const total = 60;
    await t.db
      .insertInto('outbox_events')
      .values(
        Array.from({ length: total }, (_, i) => ({
          merchant_id: merchant.merchantId,
          type: 'purchase.committed',
          payload: JSON.stringify(purchaseCommittedPayload({ customerId, orderId: `many-${i}` })),
        })),
      )
      .execute();

    // Small batches and few slots, so the two interleave; the second has a pool of its own (another process).
    const config = configWith({ OUTBOX_BATCH_SIZE: '4', OUTBOX_CONCURRENCY: '3' });
    const second = createDatabase({ connectionString: t.url, max: 6 });
    const delivered = [0, 0];
    const counting =
      (index: 0 | 1) =>
      (routes: OutboxRoutes): OutboxRoutes => ({
        ...routes,
        deliver: async (event, payload) => {
          delivered[index] = (delivered[index] ?? 0) + 1;
          return routes.deliver(event, payload);
        },
      });
    try {
      await Promise.all([
        startDispatcher({ config, wrapRoutes: counting(0) }),
        startDispatcher({ config, db: second.db, wrapRoutes: counting(1) }),
      ]);
      await receiver.waitForDeliveries(total, 20_000);
      await waitForDeliveryStatus(endpointId, 'delivered', total, 20_000);
      await pause(200);
      for (const d of running.splice(0)) await d.stop();
    } finally {
      await second.db.destroy();
    }

    const counts = countByWebhookId(receiver);
    expect(counts.size).toBe(total);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(receiver.deliveries).toHaveLength(total);
    expect(receiver.deliveries.every((d) => d.isVerified)).toBe(true);
    const { rows } = await sql<{ attempts: number }>`
      select count(*)::int as attempts from outbox_attempts a
      join outbox_events e on e.id = a.event_id where e.endpoint_id = ${endpointId}
    `.execute(t.db);
    expect(rows[0]?.attempts).toBe(total);
    // Both took part: the test really ran them side by side.
    expect(delivered[0]).toBeGreaterThan(0);
    expect(delivered[1]).toBeGreaterThan(0);
    expect((delivered[0] ?? 0) + (delivered[1] ?? 0)).toBe(total);
  });

  it('a second dispatcher does not take over a delivery that is merely slower than the lease', async () => {
    // OUTBOX_LEASE_SECONDS may be 5 while a webhook may take up to 10 s (and a Telegram send may
    // wait out a retry_after inside its claim): a live worker's claim must not be handed to another.
    const merchant = await createTestMerchant(t.db);
    const { receiver } = await endpointFor(merchant.merchantId);
    const config = configWith({ OUTBOX_LEASE_SECONDS: '5' });
    await startDispatcher({ config });
    receiver.setMode('slow:6000');
    const { customerId } = await customerOf(merchant);
    await enqueueEvent(t.db, {
      merchantId: merchant.merchantId,
      type: 'purchase.committed',
      payload: purchaseCommittedPayload({ customerId, orderId: 'slow-1' }),
    });
    const [first] = await receiver.waitForDeliveries(1);
    receiver.setMode('ok');
    // The lease has run out while the first dispatcher still waits for the answer; a second
    // dispatcher starts (its first round takes back expired claims).
    await pause(Math.max(0, (first?.receivedAt.getTime() ?? 0) + 5_300 - Date.now()));
    await startDispatcher({ config });
    await pause(500);
    expect(countByWebhookId(receiver)).toEqual(new Map([[String(first?.headers['webhook-id']), 1]]));
  }, 20_000);
});

describe('customer notifications in Telegram', () => {
  let box: SecretBox;
  beforeAll(() => {
    box = new SecretBox(t.config.APP_ENCRYPTION_KEY);
  });

  async function merchantWithBot() {
    const merchant = await createTestMerchant(t.db);
    const token = fake.createBot();
    await connectMerchantBot(t.db, { merchantId: merchant.merchantId, token, apiBaseUrl: fake.baseUrl, box });
    return { merchant, token };
  }

  let nextChat = 5_550_001;
  async function telegramCustomer(merchantId: string) {
    nextChat += 1;
    const customer = await createCustomer(t.db, {
      merchantId,
      phone: nextPhone(),
      name: 'Telegram customer',
      telegramUserId: nextChat,
    });
    return { customerId: customer.id, chatId: String(nextChat) };
  }

  /** Resolves with the time a matching call reached the fake (registered before the call happens). */
  function timeOfCall(predicate: (call: FakeTelegramCall) => boolean): Promise<number> {
    let at = 0;
    return fake
      .waitForCall((call) => {
        const isMatch = predicate(call);
        if (isMatch) at = Date.now();
        return isMatch;
      }, 10_000)
      .then(() => at);
  }

  it('tells a customer with a linked Telegram account about a purchase through the merchant’s bot', async () => {
    const { merchant, token } = await merchantWithBot();
    const { customerId, chatId } = await telegramCustomer(merchant.merchantId);
    const plain = await createTestCustomer(t.db, { merchant });
    await startDispatcher();

    const purchase = await commitPurchaseViaApi(t.app, merchant, { customerId, total: 50_000 });
    await commitPurchaseViaApi(t.app, merchant, { customerId: plain.customerId, total: 50_000 });
    const call = await fake.waitForCall(
      (c) => c.method === 'sendMessage' && String(c.params.chat_id) === chatId && c.status === 200,
      10_000,
    );
    expect(call.token).toBe(token);
    expect(String(call.params.text)).not.toBe('');

    const parent = await purchaseEvent(purchase.id);
    await expect
      .poll(async () =>
        t.db
          .selectFrom('outbox_events')
          .select(['target', 'chat_id', 'status'])
          .where('parent_id', '=', parent.id)
          .execute(),
      )
      .toEqual([{ target: 'telegram_customer', chat_id: chatId, status: 'delivered' }]);
    // The customer without Telegram got nothing: one message in all.
    await pause(200);
    expect(fake.sentMessages().filter((m) => m.token === token)).toHaveLength(1);
  });

  it("explains a purchase's campaign points in the customer's message", async () => {
    const { merchant } = await merchantWithBot();
    const { customerId, chatId } = await telegramCustomer(merchant.merchantId);
    await t.db
      .insertInto('campaigns')
      .values({
        merchant_id: merchant.merchantId,
        name: 'Бонус 20',
        kind: 'bonus_points',
        status: 'active',
        effect: JSON.stringify({ points: 20 }),
      })
      .execute();
    await startDispatcher();
    await commitPurchaseViaApi(t.app, merchant, { customerId, total: 50_000 });
    const call = await fake.waitForCall(
      (c) =>
        c.method === 'sendMessage' &&
        String(c.params.chat_id) === chatId &&
        c.status === 200 &&
        String(c.params.text).startsWith('Покупка'),
      10_000,
    );
    const text = String(call.params.text).replace(/[\u00a0\u202f]/g, ' ');
    expect(text).toContain('Начислено: 45 баллов\n  · базовые: +25 баллов\n  · Бонус 20: +20 баллов');
  });

  it('honours retry_after when the Bot API answers 429', async () => {
    const { merchant } = await merchantWithBot();
    const { customerId, chatId } = await telegramCustomer(merchant.merchantId);
    // retry_after is honoured up to the schedule's longest step (2 s here).
    await startDispatcher({ config: configWith({ OUTBOX_RETRY_SCHEDULE: '0.2,0.2,2' }) });
    const toChat = (c: FakeTelegramCall) => c.method === 'sendMessage' && String(c.params.chat_id) === chatId;
    const limited = timeOfCall((c) => toChat(c) && c.status === 429);
    const sent = timeOfCall((c) => toChat(c) && c.status === 200);
    fake.rateLimitNext(1, 1);

    const purchase = await commitPurchaseViaApi(t.app, merchant, { customerId, total: 50_000 });
    const [limitedAt, sentAt] = await Promise.all([limited, sent]);
    expect(sentAt - limitedAt).toBeGreaterThanOrEqual(1_000);

    const parent = await purchaseEvent(purchase.id);
    const child = await t.db
      .selectFrom('outbox_events')
      .selectAll()
      .where('parent_id', '=', parent.id)
      .executeTakeFirstOrThrow();
    await expect.poll(async () => (await eventById(child.id)).status).toBe('delivered');
    expect(await attemptsOf(child.id)).toEqual([
      expect.objectContaining({ status_code: 429, result: 'rate_limited' }),
      expect.objectContaining({ status_code: 200, result: 'ok' }),
    ]);
  });

  it('does not keep re-claiming forever an event whose delivery throws every time (poison event)', async () => {
    // The merchant's bot token was sealed under another APP_ENCRYPTION_KEY (the key was set or
    // rotated after the bot was connected): opening it throws on every delivery attempt.
    const { merchant } = await merchantWithBot();
    const { customerId } = await telegramCustomer(merchant.merchantId);
    const config = configWith({ APP_ENCRYPTION_KEY: 'ab'.repeat(32) });
    const d = await startDispatcher({ config, isStarted: false });
    errorsExpected.add(d);

    const purchase = await commitPurchaseViaApi(t.app, merchant, { customerId, total: 50_000 });
    const parent = await purchaseEvent(purchase.id);
    await d.dispatcher.runOnce(); // the fan-out
    expect((await eventById(parent.id)).status).toBe('delivered');
    const child = await t.db
      .selectFrom('outbox_events')
      .selectAll()
      .where('parent_id', '=', parent.id)
      .executeTakeFirstOrThrow();
    expect(child).toMatchObject({ target: 'telegram_customer', status: 'pending' });
    // Each round: claim and try; then the lease runs out (made to, instead of waiting for it) and
    // the claim is taken back, as a second worker would. Far more rounds than the schedule allows.
    const schedule = config.OUTBOX_RETRY_SCHEDULE;
    for (let round = 0; round < schedule.length + 4; round += 1) {
      await sql`update outbox_events set next_attempt_at = now() where id = ${child.id} and status = 'pending'`.execute(
        t.db,
      );
      await d.dispatcher.runOnce();
      await sql`update outbox_events set locked_until = now() - interval '1 second' where id = ${child.id} and status = 'processing'`.execute(
        t.db,
      );
      await reclaimExpiredLeases(t.db, { maxAttempts: schedule.length + 1 });
    }
    const row = await eventById(child.id);
    const tries = await attemptsOf(child.id);
    // It must end like any failing delivery: dead within the schedule, with the reason on record.
    expect({
      status: row.status,
      isWithinSchedule: row.attempts <= 1 + schedule.length,
      lastError: row.last_error,
      recordedTries: tries.length > 0,
    }).toEqual({
      status: 'dead',
      isWithinSchedule: true,
      lastError: expect.any(String),
      recordedTries: true,
    });
  });
});
