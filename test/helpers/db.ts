import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { createDatabaseOn, dropDatabaseOn } from '../../src/db/admin.js';
import { createDatabase, type Database } from '../../src/db/database.js';

/** A database of its own for one test file, copied from the migrated template. */
export interface TestDatabase {
  db: Database;
  url: string;
  serverUrl: string;
  drop(): Promise<void>;
}

/** Creates a fresh migrated database (a copy of the run's template). */
export async function createTestDatabase(options: { poolMax?: number } = {}): Promise<TestDatabase> {
  const serverUrl = inject('databaseServerUrl');
  const name = `loyalty_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const url = await createDatabaseOn(serverUrl, name, inject('templateDatabase'));
  const { db } = createDatabase({ connectionString: url, max: options.poolMax ?? 20 });
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
