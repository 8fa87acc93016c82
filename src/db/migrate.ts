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
import * as m0007 from './migrations/0007_installation_secrets.js';

// Migrations are listed here explicitly (append-only), so they work the same from source, from a
// build and inside the image, with no directory scanning.
const migrations: Record<string, Migration> = {
  '0001_core': m0001,
  '0002_ledger_functions': m0002,
  '0003_outbox_delivery': m0003,
  '0004_portal': m0004,
  '0005_expiry_reminders': m0005,
  '0007_installation_secrets': m0007,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

function createMigrator<T>(db: Kysely<T>): Migrator {
  // Migrations are written against no particular schema type.
  return new Migrator({ db: db as unknown as Kysely<unknown>, provider });
}

/** Applies every pending migration; throws with the failing migration's name on error. */
export async function migrateToLatest<T>(db: Kysely<T>): Promise<MigrationResult[]> {
  // On one connection without the pool's statement_timeout (the API's pool has one): building an
  // index on a big table may rightly take longer than any request should.
  const { error, results } = await db.connection().execute(async (conn) => {
    await sql`set statement_timeout = 0`.execute(conn);
    try {
      return await createMigrator(conn).migrateToLatest();
    } finally {
      await sql`reset statement_timeout`.execute(conn).catch(() => {});
    }
  });
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return results ?? [];
}

/** Each known migration with the time it was applied, or null when it is pending. */
export async function migrationStatus<T>(
  db: Kysely<T>,
): Promise<Array<{ name: string; executedAt: Date | null }>> {
  const list = await createMigrator(db).getMigrations();
  return list.map((m) => ({ name: m.name, executedAt: m.executedAt ?? null }));
}
