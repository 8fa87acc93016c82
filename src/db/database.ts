import { Kysely, PostgresDialect, type Transaction } from 'kysely';
import pg from 'pg';
import type { DB } from './types.js';

// int8 (bigint) columns hold points and minor units. Every amount the ledger accepts is bounded far
// below 2^53 (receipt totals <= 1e11), so parsing them as JS numbers is exact; counts too.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number.parseInt(v, 10));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

/** A Kysely instance or a transaction: service functions take either, so they compose. */
export type Executor = Kysely<DB> | Transaction<DB>;
export type Database = Kysely<DB>;

/** Options for the pool behind a Kysely instance. */
export interface CreateDatabaseOptions {
  connectionString: string;
  max?: number;
  /** Called with (sql, ms) for every query slower than slowQueryMs. */
  onSlowQuery?: (sql: string, ms: number) => void;
  slowQueryMs?: number;
  applicationName?: string;
  /** statement_timeout of every connection, ms (a runaway query is cancelled); 0 or unset = none. */
  statementTimeoutMs?: number;
  /** idle_in_transaction_session_timeout of every connection, ms; 0 or unset = the server's setting. */
  idleInTransactionTimeoutMs?: number;
}

/** Creates the pg pool and the Kysely instance on it. */
export function createDatabase(options: CreateDatabaseOptions): { db: Database; pool: pg.Pool } {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'loyalty',
    // A broken connection must not hang a request forever.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // Sent at connect time, so it holds on every connection of the pool; SET can lower it per session.
    statement_timeout: options.statementTimeoutMs || undefined,
    // A transaction of ours left idle (a bug, a hung await between two statements) would hold its
    // locks and the vacuum horizon for as long as the process lives; PostgreSQL ends the session.
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs || undefined,
  });
  // Errors of idle clients (Postgres restarted) are reported here; without a listener they crash Node.
  pool.on('error', () => {});
  // A client checked out of the pool has no 'error' listener of the pool's: a connection lost between
  // two statements of a transaction ("terminating connection due to administrator command") would be
  // an unhandled 'error' event and kill the process. The statement in flight (or the next one) fails
  // instead, and the pool drops the broken client when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  const slowMs = options.slowQueryMs ?? 0;
  const db = new Kysely<DB>({
    dialect: new PostgresDialect({ pool }),
    log:
      slowMs > 0 && options.onSlowQuery
        ? (event) => {
            if (event.queryDurationMillis >= slowMs) {
              options.onSlowQuery?.(event.query.sql, event.queryDurationMillis);
            }
          }
        : undefined,
  });
  return { db, pool };
}
