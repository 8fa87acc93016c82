import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { createDatabaseOn, dropDatabaseOn } from '../../src/db/admin.js';
import { createDatabase, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';

/** A database of its own for one test file, copied from the migrated template. */
export interface TestDatabase {
  db: Database;
  url: string;
  serverUrl: string;
  drop(): Promise<void>;
}

/** Options of a test database. */
export interface TestDatabaseOptions {
  poolMax?: number;
  /** Create the database with this C library locale (e.g. 'C') and migrate it, instead of copying the template. */
  locale?: string;
}

/** Creates a fresh migrated database (a copy of the run's template, or made with `locale`). */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const serverUrl = inject('databaseServerUrl');
  const name = `loyalty_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const url = options.locale
    ? await createDatabaseOn(serverUrl, name, 'template0', { locale: options.locale })
    : await createDatabaseOn(serverUrl, name, inject('templateDatabase'));
  const { db } = createDatabase({ connectionString: url, max: options.poolMax ?? 20 });
  if (options.locale) await migrateToLatest(db);
  return {
    db,
    url,
    serverUrl,
    async drop() {
      await db.destroy();
      await dropDatabaseOn(serverUrl, name);
    },
  };
}
