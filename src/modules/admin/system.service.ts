import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { Database } from '../../db/database.js';
import { WORKER_ALIVE_SECONDS } from '../../jobs/heartbeat.js';
import { outboxCounts } from '../../jobs/outbox.queue.js';
import type { SwitchBoard } from './switches.service.js';

// The admin panel's system page: Postgres (reachable, latency, version), Redis, the workers'
// heartbeats, the last alert sent, the run-time switches and the outbox counts. Each part reports
// its own failure instead of failing the page: the page matters most when something is down.

const CHECK_TIMEOUT_MS = 2_000;

function withTimeout<T>(promise: Promise<T>, ms = CHECK_TIMEOUT_MS): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref()),
  ]);
}

/** Whether Postgres answers, how fast, and its version. */
export async function checkPostgres(
  db: Database,
): Promise<{ ok: boolean; latencyMs: number | null; version: string | null }> {
  const started = performance.now();
  try {
    const { rows } = await withTimeout(
      sql<{ version: string }>`select current_setting('server_version') as version`.execute(db),
    );
    return {
      ok: true,
      latencyMs: Math.round((performance.now() - started) * 10) / 10,
      version: rows[0]?.version ?? null,
    };
  } catch {
    return { ok: false, latencyMs: null, version: null };
  }
}

/** Redis: ok, down, or disabled (no REDIS_URL: everything runs on Postgres and in-process limits). */
export async function checkRedis(redis: Redis | null): Promise<{ state: 'ok' | 'down' | 'disabled' }> {
  if (!redis) return { state: 'disabled' };
  try {
    await withTimeout(redis.ping());
    return { state: 'ok' };
  } catch {
    return { state: 'down' };
  }
}

/** Workers by their heartbeats; alive = seen within the last 60 s (by the database clock). */
export function listWorkers(db: Database) {
  return db
    .selectFrom('worker_heartbeats')
    .select([
      'worker_id as workerId',
      'hostname',
      'started_at as startedAt',
      'last_seen_at as lastSeenAt',
      sql<boolean>`last_seen_at > now() - make_interval(secs => ${WORKER_ALIVE_SECONDS})`.as('isAlive'),
    ])
    .orderBy('last_seen_at', 'desc')
    .limit(100)
    .execute();
}

/** The alert sent most recently (firing or resolved since), or null when none was ever sent. */
export async function getLastAlert(db: Database) {
  const row = await db
    .selectFrom('alert_states')
    .select(['name', 'firing', 'last_sent_at as lastSentAt'])
    .where('last_sent_at', 'is not', null)
    .orderBy('last_sent_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ?? null;
}

/** Everything the system page shows. */
export async function getSystemStatus(deps: { db: Database; redis: Redis | null; switches: SwitchBoard }) {
  const { db } = deps;
  const postgres = await checkPostgres(db);
  const [redis, workers, lastAlert, outbox] = await Promise.all([
    checkRedis(deps.redis),
    postgres.ok ? listWorkers(db).catch(() => []) : [],
    postgres.ok ? getLastAlert(db).catch(() => null) : null,
    postgres.ok ? outboxCounts(db).catch(() => null) : null,
  ]);
  if (postgres.ok) await deps.switches.refresh();
  return { postgres, redis, workers, lastAlert, switches: deps.switches.describe(), outbox };
}
