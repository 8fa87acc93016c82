import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { NotificationListener } from '../db/listener.js';
import type { Metrics } from '../http/metrics.js';
import { grantBirthdayBonuses } from '../modules/campaigns/birthday.service.js';
import { ensureAppKey, sealPlaintextWebhookSecrets } from '../modules/keys/keys.service.js';
import { releaseExpiredHolds } from '../modules/ledger/holds.service.js';
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
import { DEFAULT_JOB_SCHEDULES, type JobName } from './schedules.js';

/** Records of periodic job runs (one per tick) are kept this many days. */
const JOB_RUNS_RETENTION_DAYS = 7;

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

/** The periodic jobs; each runs once per tick of its schedule across all replicas (job_runs). */
export function createJobs(deps: { db: Database; config: Config; send: AlertSender }): Job[] {
  const { db, config } = deps;
  const runs: Record<JobName, () => Promise<unknown>> = {
    'points:activate': () => activatePoints(db),
    'points:expire': () => expirePoints(db),
    'holds:release': async () => {
      const result = await releaseExpiredHolds(db);
      if (result.customers > 0) await wakeWorkers(db);
    },
    // Daily figures of the portal dashboard, kept up to date every minute (dashboard.rollups.ts).
    'dashboard:rollups': () => refreshDashboardRollups(db),
    'points:remind-expiring': async () => {
      const result = await remindExpiringPoints(db, { withinDays: config.POINTS_EXPIRY_REMINDER_DAYS });
      if (result.customers > 0) await wakeWorkers(db);
    },
    'alerts:monitor': () => runAlertMonitor({ db, config, send: deps.send }),
    retention: async () => {
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
      // Referral links opened in the bot by users who never shared their phone.
      await db
        .deleteFrom('bot_referrals')
        .where('created_at', '<', sql<Date>`now() - interval '30 days'`)
        .execute();
      await db
        .deleteFrom('job_runs')
        .where('scheduled_at', '<', sql<Date>`now() - make_interval(days => ${JOB_RUNS_RETENTION_DAYS})`)
        .execute();
    },
    'staff:daily-summary': () => enqueueDailySummaries(db),
    'campaigns:birthday': async () => {
      const result = await grantBirthdayBonuses(db);
      if (result.customers > 0) await wakeWorkers(db);
    },
  };
  return (Object.keys(runs) as JobName[]).map((name) => ({
    name,
    schedule: config.JOB_SCHEDULES[name] ?? DEFAULT_JOB_SCHEDULES[name],
    run: runs[name],
  }));
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
  const workerId = `${hostname()}-${process.pid}`;
  const stopScheduler = startScheduler({
    db: deps.sessionDb ?? db,
    jobs: createJobs({ db, config, send }),
    log,
    workerId,
  });
  // The admin panel shows which workers are alive.
  const stopHeartbeat = startHeartbeat(db, {
    workerId,
    onError: (err) => log.warn({ err }, 'heartbeat failed'),
    // At shutdown, most often because the database went away: one line, no stack.
    onStopError: (err) =>
      log.info(
        { reason: err instanceof Error ? err.message : String(err) },
        'heartbeat row left at shutdown',
      ),
  });
  return async () => {
    stopScheduler();
    await stopHeartbeat();
    await dispatcher.stop();
    await closeWebhookAgents();
  };
}
