import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { Config } from '../config.js';
import { sha256Hex } from '../lib/tokens.js';
import type { Database } from './database.js';

// What the API does while PostgreSQL is away: requests that fail for want of a connection answer
// 503 `database_unavailable` (isDatabaseUnavailable), and a watch probes the database every few
// seconds so /metrics can say `loyalty_db_up 0` and an operator is told on Telegram when the outage
// lasts ALERT_DB_DOWN_MINUTES (the alert cannot go through the outbox or the alert monitor: both
// live in the database).

/** Node's socket errors that mean the server cannot be reached. */
const SOCKET_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * PostgreSQL's SQLSTATEs for a connection that is gone or refused: class 08 (connection
 * exception), 57P01-57P03 (administrator/crash shutdown, cannot connect now), 53300 (too many
 * connections).
 */
const UNAVAILABLE_STATES = /^(08...|57P0[123]|53300)$/;

/** pg's and pg-pool's own messages for a lost or impossible connection (they carry no code). */
const CONNECTION_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|not queryable|Client was closed|connect ECONNREFUSED/i;

/** Whether `error` (or an error it wraps) means the database cannot be reached right now. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; depth += 1) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (SOCKET_ERRORS.has(code) || UNAVAILABLE_STATES.test(code))) return true;
    if (CONNECTION_MESSAGES.test(e.message)) return true;
    // AggregateError (every address of a host refused) and wrapped causes.
    const inner = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(inner) && inner.some((x) => isDatabaseUnavailable(x))) return true;
    e = e.cause;
  }
  return false;
}

/** Runs `select 1` with a time limit; false when the database does not answer in time. */
export async function pingDatabase(db: Database, timeoutMs = 2_000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sql`select 1`.execute(db),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Watches whether the database answers: probes every `intervalMs`, remembers since when it is
 * down, and calls `onOutage` once an outage has lasted `alertAfterMs` (again every `repeatMs`
 * while it lasts) and `onRecovery` when the database answers again after an alerted outage.
 */
export class DatabaseWatch {
  private downSince: number | null = null;
  private alertedAt: number | null = null;
  private isSending = false;
  private timer: NodeJS.Timeout | null = null;
  private probing: Promise<boolean> | null = null;

  constructor(
    private readonly db: Database,
    private readonly options: {
      intervalMs: number;
      alertAfterMs: number;
      repeatMs: number;
      onOutage: (downForMs: number) => Promise<boolean>;
      onRecovery: (downForMs: number) => Promise<boolean>;
    },
  ) {}

  /** Probes now (concurrent callers share one probe) and acts on the result. */
  check(): Promise<boolean> {
    this.probing ??= pingDatabase(this.db)
      .then((isUp) => this.record(isUp))
      .finally(() => {
        this.probing = null;
      });
    return this.probing;
  }

  /** Updates the outage clock; alerts are sent in the background (a probe never waits for Telegram). */
  private record(isUp: boolean): boolean {
    const now = Date.now();
    if (isUp) {
      const since = this.downSince;
      this.downSince = null;
      if (since !== null && this.alertedAt !== null) {
        this.alertedAt = null;
        void this.options.onRecovery(now - since).catch(() => false);
      }
      return true;
    }
    this.downSince ??= now;
    const downForMs = now - this.downSince;
    const isDue =
      downForMs >= this.options.alertAfterMs &&
      !this.isSending &&
      (this.alertedAt === null || now - this.alertedAt >= this.options.repeatMs);
    if (isDue) {
      this.isSending = true;
      void this.options
        .onOutage(downForMs)
        .catch(() => false)
        .then((isSent) => {
          this.isSending = false;
          // Sent while the outage lasts: remembered for the repeat and the "resolved" message.
          if (isSent && this.downSince !== null) this.alertedAt = now;
        });
    }
    return false;
  }

  /** Starts probing every `intervalMs`. */
  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  /** Stops probing. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/**
 * Whether this replica is the one to send an alert every replica sees at once (the database is
 * down for all of them): the first to claim `key` in Redis for `ttlMs` sends it, the others do not.
 * Without Redis, or while it fails, every replica sends: a duplicate beats silence.
 */
export async function claimAlert(redis: Redis | null, key: string, ttlMs: number): Promise<boolean> {
  if (!redis) return true;
  try {
    return (await redis.set(key, hostname(), 'PX', Math.max(1_000, Math.round(ttlMs)), 'NX')) === 'OK';
  } catch {
    return true;
  }
}

/**
 * Redis keys of the outage alerts, shared by the replicas of one installation and by no one else:
 * two installations on one Redis (staging beside production) each send their own. The installation
 * is named by a digest of its APP_ENCRYPTION_KEY, which all its replicas share and no other has.
 */
export function dbAlertKeys(encryptionKey: string): { outage: string; recovery: string } {
  const installation = sha256Hex(`loyalty-installation:${encryptionKey}`).slice(0, 16);
  return {
    outage: `loyalty:${installation}:alert:db-down`,
    recovery: `loyalty:${installation}:alert:db-recovered`,
  };
}

/**
 * The API's watch: probes every 5 s (more often when the alert threshold is shorter) and sends the
 * outage alert after ALERT_DB_DOWN_MINUTES, repeated every ALERT_COOLDOWN_MINUTES, then "resolved".
 * With Redis, one replica sends each of them for the whole fleet (claimAlert); the others count it
 * as sent, so their "resolved" is not repeated either.
 */
export function createDatabaseWatch(
  db: Database,
  config: Pick<Config, 'ALERT_DB_DOWN_MINUTES' | 'ALERT_COOLDOWN_MINUTES' | 'APP_ENCRYPTION_KEY'>,
  send: (text: string) => Promise<boolean>,
  redis: Redis | null = null,
): DatabaseWatch {
  const keys = dbAlertKeys(config.APP_ENCRYPTION_KEY ?? '');
  const alertAfterMs = config.ALERT_DB_DOWN_MINUTES * 60_000;
  const repeatMs = config.ALERT_COOLDOWN_MINUTES * 60_000;
  const minutes = (ms: number) => `${Math.round(ms / 6_000) / 10} min`;
  return new DatabaseWatch(db, {
    intervalMs: Math.max(250, Math.min(5_000, alertAfterMs / 4)),
    alertAfterMs,
    repeatMs,
    onOutage: async (downForMs) => {
      // A little under the repeat interval, so the next repeat of any replica may claim it again.
      if (!(await claimAlert(redis, keys.outage, repeatMs * 0.9))) return true;
      // This outage's "resolved" is still to be sent, by whichever replica sees it first.
      await redis?.del(keys.recovery).catch(() => 0);
      return send(
        `🔴 ALERT: PostgreSQL unreachable for ${minutes(downForMs)} from ${hostname()} ` +
          `(threshold ${config.ALERT_DB_DOWN_MINUTES} min); the API answers 503 database_unavailable`,
      );
    },
    onRecovery: async (downForMs) => {
      if (!(await claimAlert(redis, keys.recovery, 60_000))) return true;
      // The next outage alerts again at once, whoever sees it first.
      await redis?.del(keys.outage).catch(() => 0);
      return send(`✅ RESOLVED: PostgreSQL reachable again from ${hostname()} after ${minutes(downForMs)}`);
    },
  });
}
