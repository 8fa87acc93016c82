import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { NotificationListener } from '../db/listener.js';
import type { Metrics } from '../http/metrics.js';
import { ensureAppKey, sealPlaintextWebhookSecrets } from '../modules/keys/keys.service.js';
import { activatePoints, expirePoints, remindExpiringPoints } from '../modules/ledger/ledger.service.js';
import { refreshDashboardRollups } from '../modules/portal/dashboard.rollups.js';
import { observeTelegramCalls, sendTelegramMessage } from '../modules/telegram/telegram.client.js';
import { listStaffChats } from '../modules/telegram/telegram.service.js';
import { TelegramThrottle } from '../modules/telegram/telegram.throttle.js';
import { closeWebhookAgents } from '../modules/webhooks/webhooks.delivery.js';
import { type AlertSender, runAlertMonitor } from './alerts.js';
import { startHeartbeat } from './heartbeat.js';
import { type Log, OutboxDispatcher } from './outbox.dispatcher.js';
import { wakeWorkers } from './outbox.notify.js';
import { enqueueEvent, purgeDeliveredEvents } from './outbox.queue.js';
import { createOutboxRoutes } from './outbox.routes.js';
import { type Job, startScheduler } from './scheduler.js';

/** Sends operator alerts to ALERT_TELEGRAM_CHAT_ID, or only logs them when that is not configured. */
export function createAlertSender(deps: { config: Config; metrics?: Metrics; log: Log }): AlertSender {
  const { config, log } = deps;
  return async (text) => {
    log.warn({ alert: text }, 'alert');
    if (!config.ALERT_TELEGRAM_BOT_TOKEN || !config.ALERT_TELEGRAM_CHAT_ID) return true;
    const result = await sendTelegramMessage({
      token: config.ALERT_TELEGRAM_BOT_TOKEN,
      chatId: config.ALERT_TELEGRAM_CHAT_ID,
      text,
      apiBaseUrl: config.TELEGRAM_API_BASE_URL,
    });
    if (result.result !== 'ok') log.error({ error: result.error }, 'alert could not be sent');
    return result.result === 'ok';
  };
}

/** Enqueues yesterday's summary for every merchant with linked staff chats. */
async function enqueueDailySummaries(db: Database, now = new Date()): Promise<void> {
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - 1));
  const next = new Date(day.getTime() + 86_400_000);
  const merchants = await db
    .selectFrom('staff_telegram_links as l')
    .innerJoin('merchants as m', 'm.id', 'l.merchant_id')
    .select(['m.id', 'm.name'])
    .where('l.chat_id', 'is not', null)
    .distinct()
    .execute();
  for (const merchant of merchants) {
    const { rows } = await sql<{ purchases: number; revenue: number; earned: number; redeemed: number }>`
      select count(*)::int as purchases, coalesce(sum(total), 0)::bigint as revenue,
             coalesce(sum(earned_points), 0)::bigint as earned, coalesce(sum(redeemed_points), 0)::bigint as redeemed
      from purchases where merchant_id = ${merchant.id} and created_at >= ${day} and created_at < ${next}
    `.execute(db);
    const s = rows[0];
    for (const chatId of await listStaffChats(db, merchant.id)) {
      await enqueueEvent(db, {
        merchantId: merchant.id,
        type: 'staff.daily_summary',
        payload: {
          merchantName: merchant.name,
          date: day.toISOString().slice(0, 10),
          purchases: s?.purchases ?? 0,
          revenue: s?.revenue ?? 0,
          pointsEarned: s?.earned ?? 0,
          pointsRedeemed: s?.redeemed ?? 0,
        },
        target: 'telegram_staff',
        chatId,
      });
    }
  }
}

/** The periodic jobs; each runs in one replica at a time (advisory lock). */
export function createJobs(deps: { db: Database; config: Config; send: AlertSender }): Job[] {
  const { db, config } = deps;
  return [
    { name: 'points:activate', schedule: '*/5 * * * *', run: () => activatePoints(db) },
    { name: 'points:expire', schedule: '7,37 * * * *', run: () => expirePoints(db) },
    // Daily figures of the portal dashboard, kept up to date every minute (dashboard.rollups.ts).
    { name: 'dashboard:rollups', schedule: '45 * * * * *', run: () => refreshDashboardRollups(db) },
    {
      name: 'points:remind-expiring',
      schedule: '0 9 * * *',
      run: async () => {
        const result = await remindExpiringPoints(db, { withinDays: config.POINTS_EXPIRY_REMINDER_DAYS });
        if (result.customers > 0) await wakeWorkers(db);
      },
    },
    {
      name: 'alerts:monitor',
      schedule: '5 * * * * *',
      run: () => runAlertMonitor({ db, config, send: deps.send }),
    },
    {
      name: 'retention',
      schedule: '17 3 * * *',
      run: async () => {
        await purgeDeliveredEvents(db, { olderThanDays: config.OUTBOX_RETENTION_DAYS });
        await db
          .deleteFrom('idempotency_keys')
          .where(
            'created_at',
            '<',
            sql<Date>`now() - make_interval(days => ${config.IDEMPOTENCY_RETENTION_DAYS})`,
          )
          .execute();
        await db
          .deleteFrom('customer_codes')
          .where('expires_at', '<', sql<Date>`now() - interval '1 day'`)
          .execute();
      },
    },
    { name: 'staff:daily-summary', schedule: '0 18 * * *', run: () => enqueueDailySummaries(db) },
  ];
}

/**
 * Starts the background work of a worker process (or of `npm start`, in-process): the outbox
 * dispatcher and the scheduled jobs. Returns a function that stops both, waiting for deliveries.
 */
export async function startWorkers(deps: {
  db: Database;
  /** Direct (session) connections for the scheduler's advisory locks; default `db`. */
  sessionDb?: Database;
  config: Config;
  metrics?: Metrics;
  listener?: NotificationListener;
  log: Log;
}): Promise<() => Promise<void>> {
  const { db, config, log, metrics } = deps;
  if (metrics) {
    observeTelegramCalls((call) =>
      metrics.externalRequests.inc({
        provider: 'telegram',
        result: call.result,
        status: String(call.status ?? 'none'),
      }),
    );
  }
  const box = await ensureAppKey(db, config);
  await sealPlaintextWebhookSecrets(db, box).catch((err) =>
    log.warn({ err }, 'webhook secrets stored in plain text were not sealed; retried at the next start'),
  );
  const routes = createOutboxRoutes({
    db,
    config,
    box,
    throttle: new TelegramThrottle(),
  });
  const dispatcher = new OutboxDispatcher({
    db,
    config,
    routes,
    metrics: deps.metrics,
    listener: deps.listener,
    log,
  });
  await dispatcher.start();
  const send = createAlertSender({ config, metrics: deps.metrics, log });
  const stopScheduler = startScheduler({
    db: deps.sessionDb ?? db,
    jobs: createJobs({ db, config, send }),
    log,
  });
  // The admin panel shows which workers are alive.
  const stopHeartbeat = startHeartbeat(db, {
    workerId: `${hostname()}-${process.pid}`,
    onError: (err) => log.warn({ err }, 'heartbeat failed'),
  });
  return async () => {
    stopScheduler();
    await stopHeartbeat();
    await dispatcher.stop();
    await closeWebhookAgents();
  };
}
