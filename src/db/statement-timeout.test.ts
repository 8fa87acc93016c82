import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { loadConfig } from '../config.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { migrateToLatest } from './migrate.js';

// The API's pool cancels a runaway query after DB_STATEMENT_TIMEOUT_MS instead of letting it hold a
// connection (and a lock) for ever; migrations run without that limit.

let database: TestDatabase;
const runtimes: Runtime[] = [];

async function apiRuntime(env: Record<string, string>): Promise<Runtime> {
  const { config } = loadConfig({ DATABASE_URL: database.url, ...env });
  // As src/server.ts opens it.
  const rt = await openRuntime(config, {
    allowEmbedded: false,
    poolMax: 2,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
  });
  runtimes.push(rt);
  return rt;
}

beforeAll(async () => {
  database = await createTestDatabase({ poolMax: 2 });
});

afterAll(async () => {
  for (const rt of runtimes) await rt.close();
  await database?.drop();
});

describe('statement_timeout of the API pool', () => {
  it('is 5 s by default', async () => {
    const rt = await apiRuntime({});
    const { rows } = await sql<{ statement_timeout: string }>`show statement_timeout`.execute(rt.db);
    expect(rows[0]?.statement_timeout).toBe('5s');
  });

  it('cancels a query running longer than DB_STATEMENT_TIMEOUT_MS, and the pool keeps working', async () => {
    const rt = await apiRuntime({ DB_STATEMENT_TIMEOUT_MS: '100' });
    await expect(sql`select pg_sleep(2)`.execute(rt.db)).rejects.toMatchObject({ code: '57014' });
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(rt.db);
    expect(rows[0]?.one).toBe(1);
  });

  it('lets migrations run longer than the limit, and leaves the limit in place after them', async () => {
    // 50 ms: shorter than the migrator's reads on a busy machine, long enough for its one `set`.
    const rt = await apiRuntime({ DB_STATEMENT_TIMEOUT_MS: '50' });
    await expect(migrateToLatest(rt.db)).resolves.toEqual([]);
    await expect(sql`select pg_sleep(0.3)`.execute(rt.db)).rejects.toMatchObject({ code: '57014' });
  });

  it('is off with DB_STATEMENT_TIMEOUT_MS=0', async () => {
    const rt = await apiRuntime({ DB_STATEMENT_TIMEOUT_MS: '0' });
    const { rows } = await sql<{ statement_timeout: string }>`show statement_timeout`.execute(rt.db);
    expect(rows[0]?.statement_timeout).toBe('0');
  });
});
