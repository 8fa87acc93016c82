import { sql } from 'kysely';
import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import { DEAD_COUNTER } from './outbox.queue.js';

/** Sends one alert text; returns false when it could not be sent. */
export type AlertSender = (text: string) => Promise<boolean>;

interface Check {
  name: string;
  title: string;
  value: number;
  threshold: number;
  unit: string;
}

/** What one monitor run found and sent (for logs and tests). */
export interface AlertRunReport {
  firing: string[];
  sent: string[];
  resolved: string[];
  incidents: number;
}

/**
 * The alert monitor (every minute, in one worker under an advisory lock): 5xx and slow requests in
 * the last full minute summed over every API replica, growth of dead outbox events since the last
 * run (since zero on a new installation), and sampled 5xx incidents. An alert that keeps firing is
 * repeated only after the cooldown; when it stops firing a "resolved" message follows.
 */
export async function runAlertMonitor(
  deps: { db: Database; config: Config; send: AlertSender },
  now = new Date(),
): Promise<AlertRunReport> {
  const { db, config, send } = deps;
  const minute = new Date(Math.floor(now.getTime() / 60_000) * 60_000 - 60_000);
  const stats = await db
    .selectFrom('http_minute_stats')
    .select(['kind', 'count'])
    .where('minute', '=', minute)
    .execute();
  const count = (kind: string) => stats.find((s) => s.kind === kind)?.count ?? 0;
  const deadTotal = Number(
    (await db.selectFrom('counters').select('value').where('name', '=', DEAD_COUNTER).executeTakeFirst())
      ?.value ?? 0,
  );
  const previousDead = await db
    .selectFrom('alert_states')
    .select('last_value')
    .where('name', '=', 'outbox_dead')
    .executeTakeFirst();
  // The baseline lives in the database, so a restart measures growth from where the last run left
  // off; a new installation has none and starts from zero: events that went dead before the first
  // run are growth too, not history to be swallowed.
  const deadDelta = deadTotal - (previousDead?.last_value ?? 0);

  const checks: Check[] = [
    {
      name: 'http_5xx',
      title: '5xx responses per minute',
      value: count('5xx'),
      threshold: config.ALERT_HTTP_5XX_PER_MIN,
      unit: '/min',
    },
    {
      name: 'http_slow',
      title: `requests slower than ${config.ALERT_HTTP_SLOW_THRESHOLD_MS} ms per minute`,
      value: count('slow'),
      threshold: config.ALERT_HTTP_SLOW_PER_MIN,
      unit: '/min',
    },
    {
      name: 'outbox_dead',
      title: 'new dead outbox events',
      value: deadDelta,
      threshold: config.ALERT_OUTBOX_DEAD_DELTA,
      unit: '',
    },
  ];
  const report: AlertRunReport = { firing: [], sent: [], resolved: [], incidents: 0 };
  const cooldownMs = config.ALERT_COOLDOWN_MINUTES * 60_000;

  for (const check of checks) {
    const state = await db
      .selectFrom('alert_states')
      .selectAll()
      .where('name', '=', check.name)
      .executeTakeFirst();
    const isFiring = check.value > check.threshold;
    let sentAt = state?.last_sent_at ?? null;
    if (isFiring) {
      report.firing.push(check.name);
      const isDue = !state?.firing || !sentAt || now.getTime() - sentAt.getTime() >= cooldownMs;
      if (isDue) {
        const text = `🔴 ALERT: ${check.title}: ${check.value}${check.unit} (threshold ${check.threshold})`;
        if (await send(text)) {
          sentAt = now;
          report.sent.push(check.name);
        }
      }
    } else if (state?.firing) {
      const text = `✅ RESOLVED: ${check.title}: ${check.value}${check.unit} (threshold ${check.threshold})`;
      if (await send(text)) report.resolved.push(check.name);
    }
    // A resolution that could not be sent leaves the check firing, so the next run sends it again
    // (an ALERT not sent is retried the same way: its sentAt stays as it was).
    const staysFiring = isFiring || (state?.firing === true && !report.resolved.includes(check.name));
    // The dead-event check remembers the counter itself, so its delta covers exactly one window.
    const lastValue = check.name === 'outbox_dead' ? deadTotal : check.value;
    await db
      .insertInto('alert_states')
      .values({
        name: check.name,
        firing: staysFiring,
        last_value: lastValue,
        last_sent_at: sentAt,
        updated_at: now,
      })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ firing: staysFiring, last_value: lastValue, last_sent_at: sentAt, updated_at: now }),
      )
      .execute();
  }

  // Sampled incidents: a few with full context, the rest summarised.
  const incidents = await db
    .selectFrom('alert_incidents')
    .selectAll()
    .where('sent_at', 'is', null)
    .orderBy('id')
    .limit(50)
    .execute();
  if (incidents.length > 0) {
    const lines = incidents
      .slice(0, 5)
      .map(
        (i) =>
          `• ${i.method} ${i.route} → ${i.status} (request ${i.request_id}): ${i.error ?? 'no error text'}`,
      );
    if (incidents.length > 5) lines.push(`… and ${incidents.length - 5} more`);
    if (await send(`⚠️ 5xx incidents (sampled at ${config.ALERTS_5XX_SAMPLE_RATE}):\n${lines.join('\n')}`)) {
      await db
        .updateTable('alert_incidents')
        .set({ sent_at: now })
        .where(
          'id',
          'in',
          incidents.map((i) => i.id),
        )
        .execute();
      report.incidents = incidents.length;
    }
  }
  // Keep the per-minute table small.
  await sql`delete from http_minute_stats where minute < ${new Date(now.getTime() - 86_400_000)}`.execute(db);
  return report;
}
