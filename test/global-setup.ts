import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { createDatabaseOn, dropDatabaseOn } from '../src/db/admin.js';
import { createDatabase } from '../src/db/database.js';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../src/db/embedded.js';
import { migrateToLatest } from '../src/db/migrate.js';

// Tests run against a real PostgreSQL: DATABASE_URL's server when set (CI and development
// machines), otherwise an embedded one started here. One migrated template database is made per
// run; each test file copies it (test/helpers/db.ts), so files run in parallel.

declare module 'vitest' {
  export interface ProvidedContext {
    databaseServerUrl: string;
    templateDatabase: string;
  }
}

export default async function setup(project: TestProject) {
  let embedded: EmbeddedDatabase | null = null;
  let dataDir: string | null = null;
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    dataDir = mkdtempSync(path.join(tmpdir(), 'loyalty-test-pg-'));
    // As root, PostgreSQL runs as the `postgres` user, which must be able to enter this folder.
    chmodSync(dataDir, 0o755);
    embedded = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'data') });
    serverUrl = embedded.url;
  }
  const template = `loyalty_tpl_${process.pid}_${Date.now()}`;
  const templateUrl = await createDatabaseOn(serverUrl, template);
  const { db } = createDatabase({ connectionString: templateUrl, max: 1 });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
  project.provide('databaseServerUrl', serverUrl);
  project.provide('templateDatabase', template);

  return async () => {
    if (serverUrl) await dropDatabaseOn(serverUrl, template).catch(() => {});
    await embedded?.stop().catch(() => {});
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
}
