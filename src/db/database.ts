import { createHash } from 'node:crypto';
import { Kysely, PostgresDialect, type RawBuilder, sql, type Transaction } from 'kysely';
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
  /**
   * Statements marked with `prepared()` go as named prepared statements (DATABASE_PREPARED_STATEMENTS):
   * each connection parses and plans them once. Default true; false behind a pooler in transaction
   * mode that cannot keep them (PgBouncer before 1.21, or without max_prepared_statements). A pool
   * whose named statement fails as such a pooler makes them fail sends them unnamed from then on.
   */
  preparedStatements?: boolean;
  /** Told once when the pool stops naming statements (default: console.warn). */
  onPreparedStatementsOff?: (message: string) => void;
}

// Named prepared statements for the hot path. Kysely sends every statement unnamed (parsed and
// planned on each call); a statement marked with prepared() starts with PREPARED_MARK, and the
// pool's client sends it with a name derived from its text, so each server connection prepares it
// on first use and only binds and executes it after (docs/performance.md, "Named prepared
// statements"). Only fixed texts are marked (values are parameters), so the names per connection
// are few and bounded.
const PREPARED_MARK = '/* prepared */ ';

/** Marks a statement of fixed text to run as a named prepared statement where the pool allows it. */
export function prepared<T>(query: RawBuilder<T>): RawBuilder<T> {
  return sql<T>`${sql.raw(PREPARED_MARK)}${query}`;
}

const statementNames = new Map<string, string>();

/** The name of a marked statement: a digest of its text, so one text has one name everywhere. */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `loyalty_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

type QueryArguments = [config: unknown, values?: unknown, callback?: unknown];

/**
 * The errors of a named statement on a pooler that does not keep them per client (PgBouncer in
 * transaction mode before 1.21, or without max_prepared_statements): the statement was prepared on
 * another server connection (26000), or another client prepared it on this one (42P05).
 */
const POOLER_ERRORS = new Set(['26000', '42P05']);

/** Whether a pool names its marked statements, and whom it tells when it stops. */
interface Naming {
  isOn: boolean;
  onOff: (message: string) => void;
}

/**
 * A pg client class that sends statements marked with prepared() as named statements while
 * `naming.isOn`. The first error that says the pooler in between cannot keep them fails its
 * statement (which changes nothing; a transaction around it rolls back) and turns naming off for the pool:
 * a name always stands for the same text, so such a pooler can make a named statement fail but
 * never run another statement in its place.
 */
function preparingClient(naming: Naming): typeof pg.Client {
  class PreparingClient extends pg.Client {
    // @ts-expect-error pg's query has many overloads; this forwards each of them unchanged.
    override query(...args: QueryArguments) {
      const [config, values, callback] = args;
      const query = super.query as (...a: unknown[]) => unknown;
      if (
        !naming.isOn ||
        typeof config !== 'string' ||
        !config.startsWith(PREPARED_MARK) ||
        callback !== undefined
      ) {
        return query.apply(this, args);
      }
      const pending = query.call(this, {
        name: statementName(config),
        text: config,
        values,
      }) as Promise<unknown>;
      return pending.catch((error: unknown) => {
        if (error instanceof Error && POOLER_ERRORS.has((error as { code?: string }).code ?? '')) {
          const hint =
            'named prepared statements through a pooler that does not keep them (PgBouncer before 1.21, ' +
            'or without max_prepared_statements): this process sends them unnamed from now on; set ' +
            'DATABASE_PREPARED_STATEMENTS=0, or max_prepared_statements in PgBouncer 1.21+';
          error.message += ` (${hint})`;
          if (naming.isOn) {
            naming.isOn = false;
            naming.onOff(hint);
          }
        }
        throw error;
      });
    }
  }
  // Its query forwards every overload of pg's; its declared type is looser.
  return PreparingClient as unknown as typeof pg.Client;
}

/** Creates the pg pool and the Kysely instance on it. */
export function createDatabase(options: CreateDatabaseOptions): { db: Database; pool: pg.Pool } {
  const pool = new pg.Pool({
    Client:
      options.preparedStatements === false
        ? pg.Client
        : preparingClient({
            isOn: true,
            onOff: options.onPreparedStatementsOff ?? ((message) => console.warn(message)),
          }),
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
