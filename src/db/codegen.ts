import { spawnSync } from 'node:child_process';
import { loadConfig } from '../config.js';
import { createDatabaseOn, dropDatabaseOn } from './admin.js';
import { createDatabase } from './database.js';
import { startEmbeddedPostgres } from './embedded.js';
import { migrateToLatest } from './migrate.js';

// `npm run db:codegen` regenerates src/db/types.ts from the migrations: it migrates a scratch
// database (on DATABASE_URL's server, or an embedded one) and introspects it with kysely-codegen.
// `npm run db:codegen -- --verify` fails when the checked-in types have drifted.

/** Runs kysely-codegen against a freshly migrated scratch database; returns its exit code. */
export async function runCodegen(options: { serverUrl: string; verify: boolean }): Promise<number> {
  const name = `loyalty_codegen_${process.pid}_${Date.now()}`;
  const url = await createDatabaseOn(options.serverUrl, name);
  try {
    const { db } = createDatabase({ connectionString: url, max: 1 });
    try {
      await migrateToLatest(db);
    } finally {
      await db.destroy();
    }
    const args = ['kysely-codegen', '--url', url, ...(options.verify ? ['--verify'] : [])];
    return spawnSync('npx', args, { stdio: 'inherit' }).status ?? 1;
  } finally {
    await dropDatabaseOn(options.serverUrl, name);
  }
}

async function main(): Promise<void> {
  const { config } = loadConfig();
  const verify = process.argv.includes('--verify');
  if (config.DATABASE_URL) {
    process.exitCode = await runCodegen({ serverUrl: config.DATABASE_URL, verify });
    return;
  }
  const embedded = await startEmbeddedPostgres({ dataDir: config.EMBEDDED_PG_DIR });
  try {
    process.exitCode = await runCodegen({ serverUrl: embedded.url, verify });
  } finally {
    await embedded.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // Exit explicitly, with the drift's exit code, whatever handle is left open.
  await main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
  process.exit(process.exitCode ?? 0);
}
