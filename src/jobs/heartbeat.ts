import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Executor } from '../db/database.js';

// Each worker process records that it is alive in worker_heartbeats every intervalMs; the admin
// panel's /system shows a worker as alive while its last beat is under WORKER_ALIVE_SECONDS old.
// Beats use the database clock, so hosts with skewed clocks are judged fairly.

/** A worker counts as alive while its last heartbeat is younger than this. */
export const WORKER_ALIVE_SECONDS = 60;

/** Rows of workers unseen for this long are deleted (crashed containers of old deploys). */
const FORGET_AFTER_DAYS = 7;

/** Workers whose last heartbeat is younger than WORKER_ALIVE_SECONDS (`loyalty_workers_alive`). */
export async function countAliveWorkers(db: Executor): Promise<number> {
  const row = await db
    .selectFrom('worker_heartbeats')
    .select((eb) => eb.fn.countAll<number>().as('alive'))
    .where('last_seen_at', '>', sql<Date>`now() - make_interval(secs => ${WORKER_ALIVE_SECONDS})`)
    .executeTakeFirst();
  return Number(row?.alive ?? 0);
}

/** Records one heartbeat of a worker (insert or refresh). */
export async function beat(
  db: Executor,
  options: { workerId: string; hostname: string; startedAt: Date },
): Promise<void> {
  await db
    .insertInto('worker_heartbeats')
    .values({
      worker_id: options.workerId,
      hostname: options.hostname,
      started_at: options.startedAt,
      last_seen_at: sql<Date>`now()`,
    })
    .onConflict((oc) =>
      oc.column('worker_id').doUpdateSet({ hostname: options.hostname, last_seen_at: sql<Date>`now()` }),
    )
    .execute();
}

/**
 * Starts writing heartbeats: one now, then every `intervalMs` (default 15 s). Failed beats (the
 * database is down) are reported to `onError` and retried on the next tick. The returned function
 * stops the timer and removes the worker's row, so a clean shutdown is not shown as a dead worker;
 * when that fails (a shutdown because the database went away) it goes to `onStopError`: the row
 * stays and the worker is shown as dead once its last beat is old, which is the truth.
 */
export function startHeartbeat(
  db: Executor,
  options: {
    workerId: string;
    intervalMs?: number;
    hostname?: string;
    onError?: (error: unknown) => void;
    onStopError?: (error: unknown) => void;
  },
): () => Promise<void> {
  const meta = {
    workerId: options.workerId,
    hostname: options.hostname ?? hostname(),
    startedAt: new Date(),
  };
  const onError = options.onError ?? (() => {});
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = beat(db, meta).catch(onError);
  };
  tick();
  // Awaited by the stop function too: a shutdown right after the start must not close the pool
  // under this query.
  const forgetting = db
    .deleteFrom('worker_heartbeats')
    .where('last_seen_at', '<', sql<Date>`now() - make_interval(days => ${FORGET_AFTER_DAYS})`)
    .execute()
    .catch(onError);
  const timer = setInterval(tick, options.intervalMs ?? 15_000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await Promise.all([running, forgetting]);
    await db
      .deleteFrom('worker_heartbeats')
      .where('worker_id', '=', options.workerId)
      .execute()
      .catch(options.onStopError ?? onError);
  };
}
