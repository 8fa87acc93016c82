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
 * returns false when the lock was taken. The session lock lives on one reserved connection.
 */
export async function runExclusive(db: Database, name: string, fn: () => Promise<unknown>): Promise<boolean> {
  return db.connection().execute(async (conn) => {
    const key = lockKey(name).toString();
    const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${key}::bigint) as ok`.execute(
      conn,
    );
    if (!rows[0]?.ok) return false;
    try {
      await fn();
      return true;
    } finally {
      await sql`select pg_advisory_unlock(${key}::bigint)`.execute(conn);
    }
  });
}

/**
 * Starts every job on its schedule; returns a function that stops them. `db` holds the advisory
 * locks, so it must give real sessions (DATABASE_DIRECT_URL behind a transaction pooler); the jobs
 * use their own connections.
 */
export function startScheduler(deps: { db: Database; jobs: Job[]; log: Log }): () => void {
  const crons = deps.jobs.map(
    (job) =>
      new Cron(job.schedule, { timezone: 'UTC', protect: true, name: job.name }, async () => {
        const started = Date.now();
        try {
          const ran = await runExclusive(deps.db, job.name, job.run);
          if (ran) deps.log.debug?.({ job: job.name, ms: Date.now() - started }, 'job finished');
        } catch (err) {
          deps.log.error({ err, job: job.name }, 'job failed');
        }
      }),
  );
  return () => {
    for (const cron of crons) cron.stop();
  };
}
