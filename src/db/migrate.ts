import {
  type Kysely,
  type Migration,
  type MigrationProvider,
  type MigrationResult,
  Migrator,
  sql,
} from 'kysely';
import * as m0001 from './migrations/0001_core.js';
import * as m0002 from './migrations/0002_ledger_functions.js';
import * as m0003 from './migrations/0003_outbox_delivery.js';
import * as m0004 from './migrations/0004_portal.js';
import * as m0005 from './migrations/0005_expiry_reminders.js';
import * as m0006 from './migrations/0006_ledger_provenance.js';
import * as m0007 from './migrations/0007_installation_secrets.js';
import * as m0008 from './migrations/0008_portal_user_email_scope.js';
import * as m0009 from './migrations/0009_search_collation.js';
import * as m0010 from './migrations/0010_shared_metrics.js';
import * as m0011 from './migrations/0011_campaigns.js';
import * as m0012 from './migrations/0012_write_path.js';
import * as m0013 from './migrations/0013_dashboard_rollups.js';
import * as m0014 from './migrations/0014_job_runs_trace_context.js';
import * as m0015 from './migrations/0015_enrollment.js';
import * as m0016 from './migrations/0016_holds.js';
import * as m0017 from './migrations/0017_hot_path.js';
import * as m0018 from './migrations/0018_dashboard_campaigns.js';
import * as m0019 from './migrations/0019_expiry_batches.js';
import * as m0020 from './migrations/0020_write_path_keys.js';
import * as m0021 from './migrations/0021_plan_stability.js';
import * as m0022 from './migrations/0022_commit_cpu.js';
import * as m0023 from './migrations/0023_dashboard_settled.js';
import * as m0024 from './migrations/0024_lot_index.js';
import * as m0025 from './migrations/0025_domain_checks.js';
import * as m0026 from './migrations/0026_hot_path_cpu.js';
import * as m0027 from './migrations/0027_purchase_amounts.js';
import * as m0028 from './migrations/0028_set_based_commit.js';
import * as m0029 from './migrations/0029_deleted_customer_answers.js';
import * as m0030 from './migrations/0030_set_based_redeem.js';
import * as m0031 from './migrations/0031_set_based_campaign_points.js';
import * as m0032 from './migrations/0032_customer_keys.js';
import * as m0033 from './migrations/0033_set_based_hold_purchases.js';
import * as m0034 from './migrations/0034_plans_by_key.js';

// Migrations are listed here explicitly (append-only), so they work the same from source, from a
// build and inside the image, with no directory scanning.
//
// Migrations are a deploy step (`npm run db:migrate`, run by scripts/deploy.sh before api and
// worker restart); the processes only check the schema at start (`prepareSchema`). A release runs
// on a schema newer than itself (after a rollback, or while a deploy is under way), so every
// migration keeps the previous release working: expand now, contract a release later
// (docs/decisions/003-migrations-expand-contract.md).
/** Every migration this release knows, by name, in order. */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_core': m0001,
  '0002_ledger_functions': m0002,
  '0003_outbox_delivery': m0003,
  '0004_portal': m0004,
  '0005_expiry_reminders': m0005,
  '0006_ledger_provenance': m0006,
  '0007_installation_secrets': m0007,
  '0008_portal_user_email_scope': m0008,
  '0009_search_collation': m0009,
  '0010_shared_metrics': m0010,
  '0011_campaigns': m0011,
  '0012_write_path': m0012,
  '0013_dashboard_rollups': m0013,
  '0014_job_runs_trace_context': m0014,
  '0015_enrollment': m0015,
  '0016_holds': m0016,
  '0017_hot_path': m0017,
  '0018_dashboard_campaigns': m0018,
  '0019_expiry_batches': m0019,
  '0020_write_path_keys': m0020,
  '0021_plan_stability': m0021,
  '0022_commit_cpu': m0022,
  '0023_dashboard_settled': m0023,
  '0024_lot_index': m0024,
  '0025_domain_checks': m0025,
  '0026_hot_path_cpu': m0026,
  '0027_purchase_amounts': m0027,
  '0028_set_based_commit': m0028,
  '0029_deleted_customer_answers': m0029,
  '0030_set_based_redeem': m0030,
  '0031_set_based_campaign_points': m0031,
  '0032_customer_keys': m0032,
  '0033_set_based_hold_purchases': m0033,
  '0034_plans_by_key': m0034,
};

/** Kysely's bookkeeping table (its default name). */
const MIGRATION_TABLE = 'kysely_migration';

type MigrationList = Readonly<Record<string, Migration>>;

function createMigrator<T>(db: Kysely<T>, list: MigrationList): Migrator {
  const provider: MigrationProvider = { getMigrations: async () => ({ ...list }) };
  // Migrations are written against no particular schema type.
  return new Migrator({ db: db as unknown as Kysely<unknown>, provider });
}

/** The schema of a database compared with the migrations a release knows. */
export interface SchemaState {
  /** Every migration the release knows, with when it was applied (null: pending). */
  known: Array<{ name: string; appliedAt: Date | null }>;
  /** Known migrations not applied yet: the schema is older than the release. */
  pending: string[];
  /** Applied migrations the release does not know: a newer release migrated this database. */
  unknown: Array<{ name: string; appliedAt: Date | null }>;
}

/**
 * Reads what the database has applied and compares it with `list` (this release's migrations).
 * Kysely's Migrator refuses a database holding migrations it does not know ("corrupted
 * migrations"), which is exactly the state after a rollback, so the comparison is ours.
 */
export async function readSchemaState<T>(
  db: Kysely<T>,
  list: MigrationList = MIGRATIONS,
): Promise<SchemaState> {
  const { rows: tables } = await sql<{ exists: boolean }>`
    select to_regclass(${MIGRATION_TABLE}) is not null as exists`.execute(db);
  const applied = new Map<string, Date | null>();
  if (tables[0]?.exists) {
    const { rows } = await sql<{ name: string; timestamp: string }>`
      select name, timestamp from ${sql.table(MIGRATION_TABLE)} order by name`.execute(db);
    for (const row of rows) {
      const at = new Date(row.timestamp);
      applied.set(row.name, Number.isNaN(at.getTime()) ? null : at);
    }
  }
  const names = Object.keys(list);
  return {
    known: names.map((name) => ({ name, appliedAt: applied.get(name) ?? null })),
    pending: names.filter((name) => !applied.has(name)),
    unknown: [...applied]
      .filter(([name]) => !(name in list))
      .map(([name, appliedAt]) => ({ name, appliedAt })),
  };
}

/** The schema cannot serve this release (or cannot be migrated by it); the message says what to do. */
export class SchemaError extends Error {}

/**
 * Applies every pending migration; throws with the failing migration's name on error. A database
 * already migrated by a newer release is left alone when nothing of this release is pending, and
 * refused (SchemaError) when something is: the two releases' histories have diverged.
 */
export async function migrateToLatest<T>(
  db: Kysely<T>,
  list: MigrationList = MIGRATIONS,
): Promise<MigrationResult[]> {
  // On one connection without the pool's statement_timeout (the API's pool has one): building an
  // index on a big table may rightly take longer than any request should.
  const outcome = await db.connection().execute(async (conn) => {
    await sql`set statement_timeout = 0`.execute(conn);
    try {
      const state = await readSchemaState(conn, list);
      if (state.unknown.length > 0) {
        if (state.pending.length === 0) return null;
        throw new SchemaError(
          `the database holds migrations this release does not know (${names(state.unknown)}) and lacks ` +
            `some it needs (${state.pending.join(', ')}): it was migrated by another line of releases. ` +
            'Deploy the release that made it, or restore a backup taken with this release.',
        );
      }
      return await createMigrator(conn, list).migrateToLatest();
    } finally {
      await sql`reset statement_timeout`.execute(conn).catch(() => {});
    }
  });
  if (outcome === null) return [];
  const { error, results } = outcome;
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return results ?? [];
}

function names(list: Array<{ name: string }>): string {
  return list.map((m) => m.name).join(', ');
}

/**
 * What the API and the worker do with the schema at start. With `migrate` (the embedded database
 * and `npm start`, i.e. development) pending migrations are applied; otherwise (production) the
 * process refuses to start while any is pending, since its code needs them. Migrations it does not
 * know are a newer release's (a rollback): it starts, and `warn` says so.
 */
export async function prepareSchema<T>(
  db: Kysely<T>,
  options: { migrate: boolean; warn: (message: string) => void; list?: MigrationList },
): Promise<{ applied: string[]; unknown: string[] }> {
  const list = options.list ?? MIGRATIONS;
  let applied: string[] = [];
  if (options.migrate) {
    applied = (await migrateToLatest(db, list)).map((r) => r.migrationName);
  }
  const state = await readSchemaState(db, list);
  if (state.pending.length > 0) {
    const count = state.pending.length;
    throw new SchemaError(
      `The database schema is older than this release: ${count} migration${count === 1 ? '' : 's'} ` +
        `pending (${state.pending.join(', ')}). Apply them first with \`npm run db:migrate\` ` +
        '(scripts/deploy.sh production deploy does it before restarting api and worker; ' +
        '`npm start` migrates by itself).',
    );
  }
  if (state.unknown.length > 0) {
    options.warn(
      `the database has ${state.unknown.length} migration(s) this release does not know ` +
        `(${names(state.unknown)}): a newer release migrated it. Starting anyway: each migration keeps ` +
        'the release before it working (docs/decisions/003-migrations-expand-contract.md).',
    );
  }
  return { applied, unknown: state.unknown.map((m) => m.name) };
}
