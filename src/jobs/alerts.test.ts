import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeTelegram, startFakeTelegram } from '../../test/fakes/telegram-bot-api.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { createRecordingLog } from '../../test/helpers/outbox.js';
import { buildApp } from '../app.js';
import { type Config, loadConfig } from '../config.js';
import { createDatabase } from '../db/database.js';
import { createMetrics } from '../http/metrics.js';
import { RequestStats } from '../http/request-stats.js';
import { observeTelegramCalls } from '../modules/telegram/telegram.client.js';
import { type AlertSender, runAlertMonitor } from './alerts.js';
import { claimDueEvents, enqueueEvent, markFailed } from './outbox.queue.js';
import { runExclusive, runOncePerTick } from './scheduler.js';
import { createAlertSender } from './workers.js';

// The alert monitor against a real database: thresholds, cooldown and "resolved", sampled 5xx
// incidents, the Telegram sender (fake Bot API) and the advisory lock that keeps jobs single.

let t: TestDatabase;
let fake: FakeTelegram;

beforeAll(async () => {
  [t, fake] = await Promise.all([createTestDatabase(), startFakeTelegram()]);
});
beforeEach(async () => {
  // The monitor's memory and inputs are global: every test starts from none.
  await sql`truncate alert_states, http_minute_stats, alert_incidents`.execute(t.db);
  await sql`delete from counters`.execute(t.db);
});
afterAll(async () => {
  await Promise.all([t.drop(), fake.close()]);
});

const THRESHOLDS = {
  ALERT_HTTP_5XX_PER_MIN: '10',
  ALERT_HTTP_SLOW_PER_MIN: '20',
  ALERT_HTTP_SLOW_THRESHOLD_MS: '500',
  ALERT_OUTBOX_DEAD_DELTA: '2',
  ALERT_COOLDOWN_MINUTES: '30',
};

function configWith(env: Record<string, string> = {}): Config {
  return loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...THRESHOLDS, ...env }).config;
}

/** A sender that records what it was asked to send. */
function recordingSender(): AlertSender & { texts: string[] } {
  const texts: string[] = [];
  const send = async (text: string) => {
    texts.push(text);
    return true;
  };
  return Object.assign(send, { texts });
}

const MINUTE = 60_000;
// A whole minute, well inside the monitor's one-day window.
const BASE = Math.floor(Date.now() / MINUTE) * MINUTE - 60 * MINUTE;
const at = (minutes: number) => new Date(BASE + minutes * MINUTE);

/** Seeds what every replica flushed for the minute before `now` (the one the monitor reads). */
async function seedMinute(now: Date, counts: { '5xx'?: number; slow?: number; total?: number }) {
  const minute = new Date(Math.floor(now.getTime() / MINUTE) * MINUTE - MINUTE);
  for (const [kind, count] of Object.entries(counts)) {
    await t.db.insertInto('http_minute_stats').values({ minute, kind, count }).execute();
  }
}

/** Makes `n` outbox events dead the way the dispatcher does (claimed, schedule used up). */
async function killEvents(n: number) {
  for (let i = 0; i < n; i += 1) {
    await enqueueEvent(t.db, {
      merchantId: null,
      type: 'webhook.test',
      payload: { message: 'x', occurredAt: new Date().toISOString() },
    });
  }
  const claimed = await claimDueEvents(t.db, { batchSize: n, leaseSeconds: 60 });
  expect(claimed).toHaveLength(n);
  for (const event of claimed) {
    expect(
      await markFailed(t.db, {
        id: event.id,
        attempt: event.attempts,
        error: 'HTTP 500',
        delaySeconds: null,
      }),
    ).toBe('dead');
  }
}

describe('thresholds', () => {
  it('fires when 5xx responses in the last minute exceed ALERT_HTTP_5XX_PER_MIN, not at or below it', async () => {
    const config = configWith();
    const send = recordingSender();
    await seedMinute(at(1), { '5xx': 10, total: 100 });
    const atThreshold = await runAlertMonitor({ db: t.db, config, send }, at(1));
    expect(atThreshold.firing).toEqual([]);
    expect(send.texts).toEqual([]);

    await seedMinute(at(2), { '5xx': 11, total: 100 });
    const above = await runAlertMonitor({ db: t.db, config, send }, at(2));
    expect(above).toMatchObject({ firing: ['http_5xx'], sent: ['http_5xx'] });
    expect(send.texts).toEqual(['🔴 ALERT: 5xx responses per minute: 11/min (threshold 10)']);
  });

  it('reads the minute before `now`, summed over replicas, not the minute in progress', async () => {
    const config = configWith();
    const send = recordingSender();
    // 11 in the current minute (still being counted) must not fire yet.
    await t.db
      .insertInto('http_minute_stats')
      .values({ minute: at(3), kind: '5xx', count: 11 })
      .execute();
    expect(
      (await runAlertMonitor({ db: t.db, config, send }, new Date(at(3).getTime() + 30_000))).firing,
    ).toEqual([]);
    expect((await runAlertMonitor({ db: t.db, config, send }, at(4))).firing).toEqual(['http_5xx']);
  });

  it('fires on slow requests above ALERT_HTTP_SLOW_PER_MIN, naming the threshold in ms', async () => {
    const config = configWith();
    const send = recordingSender();
    await seedMinute(at(1), { slow: 20 });
    expect((await runAlertMonitor({ db: t.db, config, send }, at(1))).firing).toEqual([]);
    await seedMinute(at(2), { slow: 21 });
    expect((await runAlertMonitor({ db: t.db, config, send }, at(2))).sent).toEqual(['http_slow']);
    expect(send.texts).toEqual(['🔴 ALERT: requests slower than 500 ms per minute: 21/min (threshold 20)']);
  });

  it('fires when the dead outbox counter grew by more than ALERT_OUTBOX_DEAD_DELTA between two runs', async () => {
    const config = configWith();
    const send = recordingSender();
    // A new installation starts from zero: dead events from before the first run are reported.
    await killEvents(5);
    const first = await runAlertMonitor({ db: t.db, config, send }, at(1));
    expect(first.sent).toEqual(['outbox_dead']);
    expect(send.texts).toEqual(['🔴 ALERT: new dead outbox events: 5 (threshold 2)']);
    send.texts.length = 0;
    // The baseline is stored in the database: a restarted worker (a fresh call, nothing in memory)
    // measures growth from it, not from whatever the counter is when it comes up.
    await killEvents(2);
    const quiet = await runAlertMonitor({ db: t.db, config, send }, at(2));
    expect(quiet).toMatchObject({ firing: [], resolved: ['outbox_dead'] });
    send.texts.length = 0;
    await killEvents(3);
    const report = await runAlertMonitor({ db: t.db, config, send }, at(3));
    expect(report.sent).toEqual(['outbox_dead']);
    expect(send.texts).toEqual(['🔴 ALERT: new dead outbox events: 3 (threshold 2)']);
    // No growth in the next window: resolved.
    const next = await runAlertMonitor({ db: t.db, config, send }, at(4));
    expect(next.resolved).toEqual(['outbox_dead']);
  });
});

describe('cooldown and resolution', () => {
  it('does not repeat a firing alert within ALERT_COOLDOWN_MINUTES, repeats it after, and says when it resolves', async () => {
    const config = configWith();
    const send = recordingSender();
    const run = (now: Date) => runAlertMonitor({ db: t.db, config, send }, now);

    for (const minute of [1, 2, 10, 30]) await seedMinute(at(minute), { '5xx': 50 });
    expect((await run(at(1))).sent).toEqual(['http_5xx']);
    // Still firing within the cooldown: reported as firing, not sent.
    for (const minute of [2, 10, 30]) {
      const report = await run(at(minute));
      expect(report.firing).toEqual(['http_5xx']);
      expect(report.sent).toEqual([]);
    }
    expect(send.texts).toHaveLength(1);

    // 30 minutes after the first message: sent again.
    await seedMinute(at(31), { '5xx': 40 });
    expect((await run(at(31))).sent).toEqual(['http_5xx']);
    expect(send.texts).toEqual([
      '🔴 ALERT: 5xx responses per minute: 50/min (threshold 10)',
      '🔴 ALERT: 5xx responses per minute: 40/min (threshold 10)',
    ]);

    // The next minute is quiet: one RESOLVED message, then silence.
    const resolved = await run(at(32));
    expect(resolved).toMatchObject({ firing: [], resolved: ['http_5xx'] });
    expect(send.texts[2]).toBe('✅ RESOLVED: 5xx responses per minute: 0/min (threshold 10)');
    await run(at(33));
    expect(send.texts).toHaveLength(3);

    // Firing again after resolving is news: sent at once, cooldown or not.
    await seedMinute(at(35), { '5xx': 12 });
    expect((await run(at(35))).sent).toEqual(['http_5xx']);
    expect(send.texts).toHaveLength(4);
  });

  it('tries again next minute when an alert or its resolution could not be sent', async () => {
    const config = configWith();
    const texts: string[] = [];
    let isUp = false;
    const flaky: AlertSender = async (text) => {
      texts.push(text);
      return isUp;
    };
    await seedMinute(at(1), { '5xx': 50 });
    await seedMinute(at(2), { '5xx': 50 });
    expect((await runAlertMonitor({ db: t.db, config, send: flaky }, at(1))).sent).toEqual([]);
    isUp = true;
    expect((await runAlertMonitor({ db: t.db, config, send: flaky }, at(2))).sent).toEqual(['http_5xx']);
    expect(texts).toHaveLength(2);

    // Quiet again, and the resolution cannot be sent: it is sent by the next run, once.
    isUp = false;
    expect((await runAlertMonitor({ db: t.db, config, send: flaky }, at(3))).resolved).toEqual([]);
    isUp = true;
    expect((await runAlertMonitor({ db: t.db, config, send: flaky }, at(4))).resolved).toEqual(['http_5xx']);
    expect((await runAlertMonitor({ db: t.db, config, send: flaky }, at(5))).resolved).toEqual([]);
    expect(texts.filter((text) => text.startsWith('✅ RESOLVED'))).toHaveLength(2);
  });
});

describe('5xx figures and incidents from real requests', () => {
  it('RequestStats of several replicas add up their counts per minute in the shared table', async () => {
    const options = { slowThresholdMs: 500, sampleRate: 0 };
    const replicaA = new RequestStats(t.db, options);
    const replicaB = new RequestStats(t.db, options);
    const entry = { route: '/x', method: 'GET', requestId: 'r' };
    const started = Date.now();
    for (let i = 0; i < 3; i += 1) replicaA.record({ ...entry, status: 500, ms: 10 });
    replicaA.record({ ...entry, status: 200, ms: 800 });
    replicaA.record({ ...entry, status: 200, ms: 5 });
    for (let i = 0; i < 2; i += 1) replicaB.record({ ...entry, status: 503, ms: 900 });
    await replicaA.flush();
    await replicaB.flush();
    await replicaA.flush(); // nothing new: adds nothing

    const rows = await t.db
      .selectFrom('http_minute_stats')
      .select(['minute', 'kind', 'count'])
      .where('minute', '>=', new Date(Math.floor(started / MINUTE) * MINUTE))
      .execute();
    const sum = (kind: string) => rows.filter((r) => r.kind === kind).reduce((n, r) => n + r.count, 0);
    expect({ total: sum('total'), '5xx': sum('5xx'), slow: sum('slow') }).toEqual({
      total: 7,
      '5xx': 5,
      slow: 3,
    });
  });

  it('counts 5xx of a real app, fires, and sends sampled incidents once with route and request id', async () => {
    const config = configWith({ ALERT_HTTP_5XX_PER_MIN: '2', ALERTS_5XX_SAMPLE_RATE: '1' });
    // A replica of its own (own pool), with a route that fails the way a bug would.
    const { db } = createDatabase({ connectionString: t.url, max: 4 });
    const app = await buildApp(config, { db, logger: false });
    app.get('/boom', async () => {
      throw new Error('kaboom in the handler');
    });
    await app.ready();
    const requestIds: string[] = [];
    try {
      for (let i = 0; i < 6; i += 1) {
        const res = await app.inject({ method: 'GET', url: '/boom' });
        expect(res.statusCode).toBe(500);
        requestIds.push(String(res.headers['x-request-id']));
      }
      await expect
        .poll(async () => (await t.db.selectFrom('alert_incidents').select('id').execute()).length)
        .toBe(6);
    } finally {
      await app.close(); // flushes the replica's counts
      await db.destroy();
    }
    const stats = await t.db
      .selectFrom('http_minute_stats')
      .select(['minute', 'count'])
      .where('kind', '=', '5xx')
      .orderBy('count', 'desc')
      .execute();
    expect(stats.reduce((n, r) => n + r.count, 0)).toBe(6);
    const busiest = stats[0];
    if (!busiest) throw new Error('no 5xx figures were written');

    const send = recordingSender();
    const now = new Date(busiest.minute.getTime() + MINUTE);
    const report = await runAlertMonitor({ db: t.db, config, send }, now);
    expect(report.firing).toEqual(['http_5xx']);
    expect(report.incidents).toBe(6);
    const incidentText = send.texts.find((text) => text.startsWith('⚠️'));
    expect(incidentText).toContain('GET /boom → 500');
    expect(incidentText).toContain('kaboom in the handler');
    // Five with full context (stored as they came, in any order), the rest summarised.
    expect(requestIds.filter((id) => incidentText?.includes(`(request ${id})`))).toHaveLength(5);
    expect(incidentText).toContain('… and 1 more');

    const again = await runAlertMonitor({ db: t.db, config, send }, new Date(now.getTime() + MINUTE));
    expect(again.incidents).toBe(0);
    expect(send.texts.filter((text) => text.startsWith('⚠️'))).toHaveLength(1);
  });
});

describe('503s of maintenance and read-only mode', () => {
  it('are counted apart (http_requests_total reason label), not as 5xx or incidents, and do not alert', async () => {
    const config = configWith({ ALERT_HTTP_5XX_PER_MIN: '2', ALERTS_5XX_SAMPLE_RATE: '1' });
    const { db } = createDatabase({ connectionString: t.url, max: 4 });
    // Two replicas, one in each mode.
    const metrics = [createMetrics({ withDefaults: false }), createMetrics({ withDefaults: false })] as const;
    const down = await buildApp(
      { ...config, MAINTENANCE_MODE: true },
      { db, logger: false, metrics: metrics[0] },
    );
    const readOnly = await buildApp(
      { ...config, READ_ONLY_MODE: true },
      { db, logger: false, metrics: metrics[1] },
    );
    // A real failure next to them is still a 5xx.
    readOnly.get('/boom', async () => {
      throw new Error('kaboom');
    });
    const started = Date.now();
    try {
      for (let i = 0; i < 5; i += 1) {
        const res = await readOnly.inject({
          method: 'POST',
          url: '/api/v1/integration/purchases',
          payload: {},
        });
        expect(res.statusCode).toBe(503);
        const blocked = await down.inject({ method: 'GET', url: '/api/v1/client/me' });
        expect(blocked.statusCode).toBe(503);
      }
      expect((await readOnly.inject({ method: 'GET', url: '/boom' })).statusCode).toBe(500);
    } finally {
      await down.close();
      await readOnly.close();
      await db.destroy();
    }
    const series = [
      ...(await metrics[0].httpRequests.get()).values,
      ...(await metrics[1].httpRequests.get()).values,
    ];
    expect(series).toEqual(
      expect.arrayContaining([
        {
          labels: {
            method: 'POST',
            route: '/api/v1/integration/purchases',
            status: '503',
            reason: 'read_only',
          },
          value: 5,
        },
        {
          labels: { method: 'GET', route: '/api/v1/client/me', status: '503', reason: 'maintenance' },
          value: 5,
        },
        { labels: { method: 'GET', route: '/boom', status: '500' }, value: 1 },
      ]),
    );
    const rows = await t.db
      .selectFrom('http_minute_stats')
      .select(['kind', 'count'])
      .where('minute', '>=', new Date(Math.floor(started / MINUTE) * MINUTE))
      .execute();
    const sum = (kind: string) => rows.filter((r) => r.kind === kind).reduce((n, r) => n + r.count, 0);
    expect({ total: sum('total'), '5xx': sum('5xx') }).toEqual({ total: 11, '5xx': 1 });
    const incidents = await t.db.selectFrom('alert_incidents').select(['route', 'status']).execute();
    expect(incidents).toEqual([{ route: '/boom', status: 500 }]);
    const send = recordingSender();
    for (const row of await t.db.selectFrom('http_minute_stats').select('minute').distinct().execute()) {
      const report = await runAlertMonitor(
        { db: t.db, config, send },
        new Date(row.minute.getTime() + MINUTE),
      );
      expect(report.firing).toEqual([]);
    }
  });
});

describe('createAlertSender', () => {
  it('sends to ALERT_TELEGRAM_CHAT_ID with ALERT_TELEGRAM_BOT_TOKEN; each call reaches external_requests_total', async () => {
    const token = fake.createBot();
    const chatId = '-1001234567';
    const config = configWith({
      ALERT_TELEGRAM_BOT_TOKEN: token,
      ALERT_TELEGRAM_CHAT_ID: chatId,
      TELEGRAM_API_BASE_URL: fake.baseUrl,
    });
    // What the worker wires (startWorkers): every Bot API call of the process into its counter.
    const metrics = createMetrics({ withDefaults: false });
    observeTelegramCalls((call) =>
      metrics.externalRequests.inc({
        provider: 'telegram',
        result: call.result,
        status: String(call.status ?? 'none'),
      }),
    );
    const log = createRecordingLog();
    const send = createAlertSender({ config, metrics, log });
    try {
      await seedMinute(at(1), { '5xx': 11 });
      const report = await runAlertMonitor({ db: t.db, config, send }, at(1));
      expect(report.sent).toEqual(['http_5xx']);
      expect(fake.sentMessages(chatId)).toEqual([
        { token, chatId, text: '🔴 ALERT: 5xx responses per minute: 11/min (threshold 10)' },
      ]);

      // Telegram refusing: reported as not sent, counted with its result and status.
      fake.rateLimitNext(1, 3);
      expect(await send('second alert')).toBe(false);
    } finally {
      observeTelegramCalls(null);
    }
    const counted = (await metrics.externalRequests.get()).values.map((v) => ({
      labels: v.labels,
      value: v.value,
    }));
    expect(counted).toEqual(
      expect.arrayContaining([
        { labels: { provider: 'telegram', result: 'ok', status: '200' }, value: 1 },
        { labels: { provider: 'telegram', result: 'rate_limited', status: '429' }, value: 1 },
      ]),
    );
    expect(counted).toHaveLength(2);
    expect(log.errors()).toEqual([expect.objectContaining({ msg: 'alert could not be sent' })]);
  });

  it('only logs when the alert chat is not configured', async () => {
    const before = fake.calls.length;
    const log = createRecordingLog();
    const send = createAlertSender({ config: configWith({ TELEGRAM_API_BASE_URL: fake.baseUrl }), log });
    expect(await send('nobody to tell')).toBe(true);
    expect(fake.calls.length).toBe(before);
    expect(log.lines).toEqual([expect.objectContaining({ level: 'warn', obj: { alert: 'nobody to tell' } })]);
  });
});

describe('runExclusive', () => {
  it('runs one of two concurrent runs of the same job (two replicas), and the next run after it', async () => {
    const other = createDatabase({ connectionString: t.url, max: 2 });
    try {
      let runs = 0;
      let release = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const job = async () => {
        runs += 1;
        await gate;
      };
      const first = runExclusive(t.db, 'test:exclusive', job);
      const second = runExclusive(other.db, 'test:exclusive', job);
      // The loser returns at once while the winner still holds the lock.
      expect(await Promise.race([first, second])).toBe(false);
      // Another job name is not held by it.
      expect(await runExclusive(other.db, 'test:another', async () => {})).toBe(true);
      release();
      expect((await Promise.all([first, second])).sort()).toEqual([false, true]);
      expect(runs).toBe(1);

      // Released: the next run goes ahead, also when the job fails.
      await expect(
        runExclusive(other.db, 'test:exclusive', async () => {
          throw new Error('job failed');
        }),
      ).rejects.toThrow('job failed');
      expect(await runExclusive(t.db, 'test:exclusive', job)).toBe(true);
      expect(runs).toBe(2);
    } finally {
      await other.db.destroy();
    }
  });
});

describe('runOncePerTick', () => {
  it('runs a tick once across replicas, also when one replica fires after the other has finished', async () => {
    const other = createDatabase({ connectionString: t.url, max: 2 });
    try {
      const runsOf = new Map<string, number>();
      const job = (tick: string) => async () => {
        runsOf.set(tick, (runsOf.get(tick) ?? 0) + 1);
      };
      const tick = new Date('2026-01-01T10:00:05Z');
      // The first replica runs the tick and finishes before the second one's timer fires.
      expect(
        await runOncePerTick(t.db, { name: 'test:tick', scheduledAt: tick, workerId: 'a' }, job('1')),
      ).toBe(true);
      expect(
        await runOncePerTick(other.db, { name: 'test:tick', scheduledAt: tick, workerId: 'b' }, job('1')),
      ).toBe(false);
      // The next tick runs again; a failure is recorded on its claim and not retried for that tick.
      const next = new Date('2026-01-01T10:00:06Z');
      await expect(
        runOncePerTick(other.db, { name: 'test:tick', scheduledAt: next, workerId: 'b' }, async () => {
          throw new Error('job failed');
        }),
      ).rejects.toThrow('job failed');
      expect(
        await runOncePerTick(t.db, { name: 'test:tick', scheduledAt: next, workerId: 'a' }, job('2')),
      ).toBe(false);
      expect([...runsOf.entries()]).toEqual([['1', 1]]);
      const records = await t.db
        .selectFrom('job_runs')
        .select(['scheduled_at', 'worker_id', 'error'])
        .where('job', '=', 'test:tick')
        .where('finished_at', 'is not', null)
        .orderBy('scheduled_at')
        .execute();
      expect(records).toEqual([
        { scheduled_at: tick, worker_id: 'a', error: null },
        { scheduled_at: next, worker_id: 'b', error: 'job failed' },
      ]);
    } finally {
      await other.db.destroy();
    }
  });
});

describe('runOncePerTick on a session pool of two connections (DATABASE_DIRECT_URL)', () => {
  it('runs two jobs of the same tick at once without waiting for a third connection', async () => {
    // The worker's session pool behind a transaction pooler has two connections: each job's run holds
    // one for its advisory lock, so its claim must not need another.
    const session = createDatabase({ connectionString: t.url, max: 2 });
    try {
      const tick = new Date('2026-01-01T11:00:00Z');
      const started = Date.now();
      const ran = await Promise.all(
        ['test:pair-a', 'test:pair-b'].map((name) =>
          runOncePerTick(session.db, { name, scheduledAt: tick, workerId: 'a' }, async () => {}),
        ),
      );
      expect(ran).toEqual([true, true]);
      // The pool's connection timeout is 5 s: a run that waited for a connection took that long.
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await session.db.destroy();
    }
  });
});
