import { Cron } from 'croner';
import { sql } from 'kysely';
import type { Database } from '../db/database.js';
import type { Log } from './outbox.dispatcher.js';

/** A periodic job. */
export interface Job {
  name: string;
  /** Cron pattern (seconds optional), UTC. */
  schedule: string;
  run(): Promise<unknown>;
}

/** 64-bit advisory lock key of a job name (stable across processes). */
function lockKey(name: string): bigint {
  let hash = 1469598103934665603n;
  for (const ch of Buffer.from(`loyalty:${name}`)) {
    hash ^= BigInt(ch);
    hash = (hash * 1099511628211n) & 0xffffffffffffffffn;
  }
  return BigInt.asIntN(64, hash);
}

/**
 * Runs `fn` only if no other process holds the job's advisory lock (so one replica runs each job);
 * returns false when the lock was taken. The session lock lives on one reserved connection, which
 * `fn` gets for its own bookkeeping: asking the pool for another while holding this one can wait for
 * ever when other jobs hold the rest (the session pool behind a transaction pooler has two).
 */
export async function runExclusive(
  db: Database,
  name: string,
  fn: (session: Database) => Promise<unknown>,
): Promise<boolean> {
  return db.connection().execute(async (conn) => {
    const key = lockKey(name).toString();
    const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${key}::bigint) as ok`.execute(
      conn,
    );
    if (!rows[0]?.ok) return false;
    try {
      await fn(conn);
      return true;
    } finally {
      await sql`select pg_advisory_unlock(${key}::bigint)`.execute(conn);
    }
  });
}

/**
 * Runs `fn` for one tick of a job's schedule, once across every process: under the job's advisory
 * lock (no two runs overlap) it claims the tick in `job_runs`, on the lock's own connection; a
 * process whose timer fires after another one has claimed the tick (even one that has already
 * finished) does not run it again.
 * Returns false when the lock was taken or the tick already claimed. The outcome is recorded on the
 * claim (`finished_at`, `error`); a failed run is not retried for its tick.
 */
export async function runOncePerTick(
  db: Database,
  job: { name: string; scheduledAt: Date; workerId: string },
  fn: () => Promise<unknown>,
): Promise<boolean> {
  let claimed = false;
  const ran = await runExclusive(db, job.name, async (session) => {
    const claim = await session
      .insertInto('job_runs')
      .values({ job: job.name, scheduled_at: job.scheduledAt, worker_id: job.workerId })
      .onConflict((oc) => oc.columns(['job', 'scheduled_at']).doNothing())
      .returning('job')
      .executeTakeFirst();
    if (!claim) return;
    claimed = true;
    let error: string | null = null;
    try {
      await fn();
    } catch (err) {
      error = String(err instanceof Error ? err.message : err).slice(0, 1000);
      throw err;
    } finally {
      await session
        .updateTable('job_runs')
        .set({ finished_at: sql<Date>`now()`, error })
        .where('job', '=', job.name)
        .where('scheduled_at', '=', job.scheduledAt)
        .execute();
    }
  });
  return ran && claimed;
}

/**
 * Starts every job on its schedule; returns a function that stops them. `db` holds the advisory
 * locks and the tick claims, so it must give real sessions (DATABASE_DIRECT_URL behind a transaction
 * pooler); the jobs use their own connections.
 */
export function startScheduler(deps: { db: Database; jobs: Job[]; log: Log; workerId: string }): () => void {
  const crons = deps.jobs.map(
    (job) =>
      new Cron(job.schedule, { timezone: 'UTC', protect: true, name: job.name }, async (self) => {
        const started = Date.now();
        // The tick the timer fired for (croner's scheduled time), the same in every process however
        // late this one's event loop got to it.
        const scheduledAt = self.currentRun() ?? new Date(Math.floor(started / 1000) * 1000);
        try {
          const ran = await runOncePerTick(
            deps.db,
            { name: job.name, scheduledAt, workerId: deps.workerId },
            job.run,
          );
          if (ran) {
            deps.log.debug?.(
              { job: job.name, scheduledAt: scheduledAt.toISOString(), ms: Date.now() - started },
              'job finished',
            );
          }
        } catch (err) {
          deps.log.error({ err, job: job.name, scheduledAt: scheduledAt.toISOString() }, 'job failed');
        }
      }),
  );
  return () => {
    for (const cron of crons) cron.stop();
  };
}
