import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeWebhookAgents } from '../../src/modules/webhooks/webhooks.delivery.js';
import { type ReceiverMode, startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createTestCustomer } from '../helpers/factories.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import {
  commitPurchaseViaApi,
  countByWebhookId,
  createReceiverEndpoint,
  pause,
  type ReceiverEndpoint,
  type RunningDispatcher,
  startTestDispatcher,
} from '../helpers/outbox.js';
import { recordFaultRow } from './report.js';

// Scenario 5: merchants' endpoints that misbehave in every way production sees: hang past the
// deadline, answer 5xx, 429 with Retry-After (sane and absurd), reset the connection, send 10 MB, or
// redirect to a private address. Purchases committed through the POS API fan out to one endpoint per
// behaviour; the real dispatcher delivers them. Each delivery must end as documented (README "Outbox,
// webhooks and Telegram"): delivered or dead with the expected number of attempts, nothing left in the
// queue, the dead counter exact, no redirect followed and no body read past its cap.

const SOAK = process.env.FAULTS_SOAK === '1';
const PURCHASES = SOAK ? 60 : 6;
// 4 attempts: three retries after 0.2 s, 0.5 s and 3 s (±20%); the longest step caps Retry-After.
const SCHEDULE = [0.2, 0.5, 3];
const MAX_ATTEMPTS = SCHEDULE.length + 1;
// Short enough to keep the run brief, long enough that a loaded machine does not time out a healthy answer.
const TIMEOUT_MS = 3_000;
const TEN_MB = 10 * 1024 * 1024;

interface Behaviour {
  name: string;
  /** The receiver's steady mode, and optionally what it answers the first `n` tries of each event. */
  mode: ReceiverMode;
  first?: { n: number; mode: ReceiverMode };
  expected: { status: 'delivered' | 'dead'; attempts: number; result?: string };
}

describe('fault: webhook receivers that misbehave', () => {
  let t: TestApp;
  let dispatcher: RunningDispatcher;
  let trap: WebhookReceiver;
  const endpoints = new Map<string, ReceiverEndpoint>();

  const behaviours: Behaviour[] = [
    { name: 'healthy', mode: 'ok', expected: { status: 'delivered', attempts: 1 } },
    {
      name: 'hangs past the deadline',
      mode: `slow:${TIMEOUT_MS * 2}`,
      expected: { status: 'dead', attempts: MAX_ATTEMPTS, result: 'timeout' },
    },
    {
      name: 'hangs once',
      mode: 'ok',
      first: { n: 1, mode: `slow:${TIMEOUT_MS * 2}` },
      expected: { status: 'delivered', attempts: 2 },
    },
    {
      name: '503 twice',
      mode: 'ok',
      first: { n: 2, mode: 'status:503' },
      expected: { status: 'delivered', attempts: 3 },
    },
    {
      name: '500 always',
      mode: 'status:500',
      expected: { status: 'dead', attempts: MAX_ATTEMPTS, result: 'http_error' },
    },
    {
      name: '429 Retry-After: 2',
      mode: 'ok',
      first: { n: 1, mode: 'status:429:retry-after=2' },
      expected: { status: 'delivered', attempts: 2 },
    },
    {
      name: '429 Retry-After: 99999999',
      mode: 'ok',
      first: { n: 1, mode: 'status:429:retry-after=99999999' },
      expected: { status: 'delivered', attempts: 2 },
    },
    {
      name: 'connection reset twice',
      mode: 'ok',
      first: { n: 2, mode: 'reset' },
      expected: { status: 'delivered', attempts: 3 },
    },
    { name: '10 MB answer', mode: `huge:${TEN_MB}`, expected: { status: 'delivered', attempts: 1 } },
    // Set in beforeAll: a redirect to the trap receiver on 127.0.0.1.
    {
      name: 'redirect to a private address',
      mode: 'ok',
      expected: { status: 'dead', attempts: MAX_ATTEMPTS, result: 'http_error' },
    },
  ];

  beforeAll(async () => {
    t = await createTestApp({
      env: {
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
        WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
        OUTBOX_RETRY_SCHEDULE: SCHEDULE.join(','),
        OUTBOX_POLL_INTERVAL_MS: '100',
      },
      listen: true,
      database: { poolMax: 6 },
    });
    trap = await startWebhookReceiver();
    const redirect = behaviours.at(-1);
    if (redirect) redirect.mode = `redirect:${trap.url}`;
  });

  afterAll(async () => {
    await dispatcher?.stop();
    for (const endpoint of endpoints.values()) await endpoint.receiver.close();
    await trap?.close();
    await closeWebhookAgents();
    await t?.close();
  });

  it('ends every delivery delivered or dead as documented, with the dead counter exact', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db);
    for (const behaviour of behaviours) {
      const endpoint = await createReceiverEndpoint(t.db, {
        merchantId: merchant.merchantId,
        eventTypes: ['purchase.committed'],
        mode: behaviour.mode,
      });
      if (behaviour.first) endpoint.receiver.failFirst(behaviour.first.n, behaviour.first.mode);
      endpoints.set(behaviour.name, endpoint);
    }
    dispatcher = await startTestDispatcher({ db: t.db, url: t.url, config: t.config });

    const started = Date.now();
    const purchases: string[] = [];
    for (let i = 0; i < PURCHASES; i++) {
      purchases.push((await commitPurchaseViaApi(t.app, merchant, { customerId, total: 5_000 })).id);
    }

    // Wait until nothing is left to deliver (bounded: the schedule adds up to ~5 s after the deadlines).
    let left = Number.POSITIVE_INFINITY;
    while (left > 0 && Date.now() - started < 120_000) {
      await pause(250);
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from outbox_events where status in ('pending', 'processing')
      `.execute(t.db);
      left = rows[0]?.n ?? 0;
    }
    const settledMs = Date.now() - started;
    expect(left, 'events still waiting in the queue').toBe(0);

    const deliveries = await t.db
      .selectFrom('outbox_events')
      .select(['id', 'endpoint_id', 'status', 'attempts', 'last_error'])
      .where('target', '=', 'webhook')
      .execute();
    const attempts = await t.db
      .selectFrom('outbox_attempts')
      .select(['event_id', 'attempt', 'result', 'status_code', 'response_excerpt', 'duration_ms'])
      .execute();
    expect(deliveries).toHaveLength(PURCHASES * behaviours.length);

    let wrong = 0;
    let lost = 0;
    let duplicated = 0;
    for (const behaviour of behaviours) {
      const endpoint = endpoints.get(behaviour.name);
      if (!endpoint) throw new Error(behaviour.name);
      const mine = deliveries.filter((d) => d.endpoint_id === endpoint.endpointId);
      expect(mine, behaviour.name).toHaveLength(PURCHASES);
      for (const delivery of mine) {
        const tries = attempts.filter((a) => a.event_id === delivery.id);
        const isAsExpected =
          delivery.status === behaviour.expected.status && delivery.attempts === behaviour.expected.attempts;
        if (!isAsExpected) wrong += 1;
        expect(
          { status: delivery.status, attempts: delivery.attempts },
          `${behaviour.name}: ${JSON.stringify(tries.map((a) => [a.result, a.status_code, a.duration_ms]))}`,
        ).toEqual({ status: behaviour.expected.status, attempts: behaviour.expected.attempts });
        expect(tries.map((a) => a.attempt).sort(), behaviour.name).toEqual(
          Array.from({ length: delivery.attempts }, (_, i) => i + 1),
        );
        if (behaviour.expected.result) {
          expect(new Set(tries.map((a) => a.result)), behaviour.name).toEqual(
            new Set([behaviour.expected.result]),
          );
        }
      }
      // What the receiver saw: every event, each try once (at-least-once never needed a duplicate here).
      const counts = countByWebhookId(endpoint.receiver);
      lost += Math.max(0, PURCHASES - counts.size);
      const tries = behaviour.expected.attempts;
      duplicated += [...counts.values()].filter((n) => n > tries).length;
      expect(counts.size, behaviour.name).toBe(PURCHASES);
      expect(new Set(counts.values()), behaviour.name).toEqual(new Set([tries]));
      expect(endpoint.receiver.deliveries.every((d) => d.isVerified)).toBe(true);
    }

    // Retry-After: the second try of each event came at least 2 s after the first, and an absurd
    // Retry-After was cut to the schedule's longest step (3 s) instead of parking the event for years.
    const gaps = (name: string) => {
      const receiver = endpoints.get(name)?.receiver;
      const byId = new Map<string, number[]>();
      for (const d of receiver?.deliveries ?? []) {
        const id = String(d.headers['webhook-id']);
        byId.set(id, [...(byId.get(id) ?? []), d.receivedAt.getTime()]);
      }
      return [...byId.values()].map(([first = 0, second = 0]) => second - first);
    };
    for (const gap of gaps('429 Retry-After: 2')) expect(gap).toBeGreaterThanOrEqual(1_950);
    for (const gap of gaps('429 Retry-After: 99999999')) {
      expect(gap).toBeGreaterThanOrEqual(2_950);
      expect(gap).toBeLessThan(15_000);
    }

    // The 10 MB answers: delivered on the status line, the body cut at the cap, no time spent reading it.
    const huge = endpoints.get('10 MB answer');
    const hugeTries = attempts.filter((a) =>
      deliveries.some((d) => d.id === a.event_id && d.endpoint_id === huge?.endpointId),
    );
    for (const attempt of hugeTries) {
      expect(attempt.result).toBe('ok');
      expect(attempt.response_excerpt?.length ?? 0).toBeLessThanOrEqual(513);
      expect(attempt.duration_ms).toBeLessThan(TIMEOUT_MS);
    }

    // The redirect was never followed: the trap on 127.0.0.1 got nothing; each try says why.
    expect(trap.deliveries).toHaveLength(0);
    const redirected = deliveries.filter(
      (d) => d.endpoint_id === endpoints.get('redirect to a private address')?.endpointId,
    );
    for (const d of redirected) expect(d.last_error).toMatch(/HTTP 307: redirect to .* not followed/);

    // The dead counter is exact: one per dead delivery, on /metrics too.
    const dead = deliveries.filter((d) => d.status === 'dead').length;
    const expectedDead = PURCHASES * behaviours.filter((b) => b.expected.status === 'dead').length;
    const { rows: counter } = await sql<{ value: number }>`
      select value from counters where name = 'outbox_dead_total'
    `.execute(t.db);
    const metrics = await scrapeMetrics(t.app, ['loyalty_outbox_dead_total', 'loyalty_outbox_pending']);
    expect(dead).toBe(expectedDead);
    expect(counter[0]?.value).toBe(expectedDead);
    expect(metrics.loyalty_outbox_dead_total).toBe(expectedDead);
    expect(metrics.loyalty_outbox_pending).toBe(0);
    expect(dispatcher.log.errors()).toEqual([]);

    recordFaultRow({
      scenario: '5 webhook-receiver-faults',
      operations: deliveries.length,
      answered: deliveries.filter((d) => d.status === 'delivered').length,
      lost,
      duplicated,
      violations: wrong + Math.abs((counter[0]?.value ?? 0) - expectedDead) + trap.deliveries.length,
      recoveryMs: settledMs,
      notes:
        `${PURCHASES} purchases x ${behaviours.length} endpoints (${behaviours.map((b) => b.name).join(', ')}); ` +
        `${dead} dead as expected (dead counter ${counter[0]?.value}); ${attempts.length} attempts; ` +
        'recovery = until the queue was empty',
    });
  });
});
