import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Config } from './config.js';
import { createDatabase, type Database } from './db/database.js';
import { type EmbeddedDatabase, resolveDataDir, startEmbeddedPostgres } from './db/embedded.js';
import { applyEmbeddedInstallationKey } from './modules/keys/keys.service.js';
import { createRedis } from './redis.js';

/** The shared resources of a process (API, worker or CLI) and how to close them in order. */
export interface Runtime {
  db: Database;
  pool: pg.Pool;
  /** DATABASE_READ_URL's database (the portal's analytics), or `db` when it is unset. */
  readDb: Database;
  redis: Redis | null;
  databaseUrl: string;
  /** Where session-bound work connects (LISTEN): DATABASE_DIRECT_URL, else `databaseUrl`. */
  directUrl: string;
  /** A small pool on `directUrl` for session advisory locks (the scheduler); `db` without one. */
  sessionDb: Database;
  embedded: EmbeddedDatabase | null;
  close(): Promise<void>;
}

/**
 * Connects to DATABASE_URL, or (for `npm start` on a fresh machine) starts the embedded PostgreSQL
 * when it is unset and `allowEmbedded` is true.
 */
export async function openRuntime(
  config: Config,
  options: {
    allowEmbedded: boolean;
    poolMax?: number;
    /** statement_timeout of the pool, ms (the API passes DB_STATEMENT_TIMEOUT_MS); unset = none. */
    statementTimeoutMs?: number;
    log?: (message: string) => void;
    onSlowQuery?: (sql: string, ms: number) => void;
    /** Told when the embedded PostgreSQL stops on its own, with its last log lines. */
    onEmbeddedExit?: (logTail: string) => void;
    /** Told once per pool that stops naming statements (see createDatabase). */
    onPreparedStatementsOff?: (message: string) => void;
  },
): Promise<Runtime> {
  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    if (!options.allowEmbedded) {
      throw new Error('DATABASE_URL is not set (only `npm start` runs an embedded PostgreSQL)');
    }
    options.log?.(`starting embedded PostgreSQL in ${config.EMBEDDED_PG_DIR} ...`);
    embedded = await startEmbeddedPostgres({
      dataDir: config.EMBEDDED_PG_DIR,
      port: config.EMBEDDED_PG_PORT,
      onUnexpectedExit: options.onEmbeddedExit,
    });
    databaseUrl = embedded.url;
    // Outside production with no APP_ENCRYPTION_KEY, the installation's key lives in the data folder.
    applyEmbeddedInstallationKey(config, resolveDataDir(config.EMBEDDED_PG_DIR));
  }
  const { db, pool } = createDatabase({
    connectionString: databaseUrl,
    max: options.poolMax ?? config.DATABASE_POOL_MAX,
    slowQueryMs: config.DB_SLOW_QUERY_MS,
    statementTimeoutMs: options.statementTimeoutMs,
    idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    onSlowQuery: options.onSlowQuery,
    preparedStatements: config.DATABASE_PREPARED_STATEMENTS,
    onPreparedStatementsOff: options.onPreparedStatementsOff,
  });
  // Pools connect lazily: processes that never read analytics open no replica connection.
  const replica = config.DATABASE_READ_URL
    ? createDatabase({
        connectionString: config.DATABASE_READ_URL,
        max: options.poolMax ?? config.DATABASE_POOL_MAX,
        slowQueryMs: config.DB_SLOW_QUERY_MS,
        onSlowQuery: options.onSlowQuery,
        idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
        applicationName: 'loyalty-read',
        preparedStatements: config.DATABASE_PREPARED_STATEMENTS,
        onPreparedStatementsOff: options.onPreparedStatementsOff,
      }).db
    : null;
  // Session advisory locks through a transaction pooler would be taken on one server connection and
  // released on another ("you don't own a lock"), leaking the lock: they get their own direct pool.
  const direct = config.DATABASE_DIRECT_URL
    ? createDatabase({
        connectionString: config.DATABASE_DIRECT_URL,
        max: 2,
        idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
        applicationName: 'loyalty-session',
      }).db
    : null;
  const redis = createRedis(config.REDIS_URL);
  return {
    directUrl: config.DATABASE_DIRECT_URL ?? databaseUrl,
    sessionDb: direct ?? db,
    db,
    pool,
    readDb: replica ?? db,
    redis,
    databaseUrl,
    embedded,
    async close() {
      await db.destroy().catch(() => {});
      await replica?.destroy().catch(() => {});
      await direct?.destroy().catch(() => {});
      redis?.disconnect();
      await embedded?.stop().catch(() => {});
    },
  };
}
