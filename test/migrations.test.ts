import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiProcess, spawnNodeScript, startApi } from '../bench/lib/api-process.js';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { findFreePort } from '../src/db/embedded.js';
import { MIGRATIONS, migrateToLatest, prepareSchema, readSchemaState } from '../src/db/migrate.js';
import { spawnCli } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestCustomer, createTestMerchant } from './helpers/factories.js';

// Migrations are a deploy step; the API and the worker only check the schema at start. A release
// must start on a schema newer than itself (the rollback after a release with a migration), and
// refuse one older than itself. The API runs here as production runs it, as its own process.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NAMES = Object.keys(MIGRATIONS);
const LATEST = NAMES.at(-1) ?? '';
/** Release N-1: this release's migrations without the last one. */
const PREVIOUS_RELEASE = Object.fromEntries(Object.entries(MIGRATIONS).slice(0, -1));
const NEXT = '9999_next_release_expand';

const databases: TestDatabase[] = [];
const processes: ApiProcess[] = [];

async function database(): Promise<TestDatabase> {
  const d = await createTestDatabase({ poolMax: 4 });
  databases.push(d);
  return d;
}

/** What the next release's migration would do to this database: an expand step, recorded. */
async function applyNextRelease(d: TestDatabase): Promise<void> {
  await sql`alter table merchants add column next_release_note text`.execute(d.db);
  await sql`create table next_release_things (id bigint generated always as identity primary key)`.execute(
    d.db,
  );
  await sql`insert into kysely_migration (name, timestamp) values (${NEXT}, ${new Date().toISOString()})`.execute(
    d.db,
  );
}

function productionEnv(d: TestDatabase, port: number): Record<string, string> {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: d.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    WORKERS_ENABLED: '0',
    APP_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    METRICS_TOKEN: randomBytes(24).toString('hex'),
  };
}

let newer: TestDatabase;

beforeAll(async () => {
  newer = await database();
  await applyNextRelease(newer);
});

afterAll(async () => {
  await Promise.all(processes.splice(0).map((p) => p.stop()));
  await Promise.all(databases.splice(0).map((d) => d.drop()));
});

describe('release N-1 on schema N', () => {
  it('checks, migrates nothing, and serves: the previous release on the latest schema', async () => {
    const d = await database();
    const warnings: string[] = [];
    const schema = await prepareSchema(d.db, {
      migrate: false,
      list: PREVIOUS_RELEASE,
      warn: (m) => warnings.push(m),
    });
    expect(schema.unknown).toEqual([LATEST]);
    expect(warnings).toEqual([expect.stringContaining(`(${LATEST}): a newer release migrated it`)]);
    // What `npm run db:migrate` of release N-1 does there (restore.sh runs it): nothing, no error.
    expect(await migrateToLatest(d.db, PREVIOUS_RELEASE)).toEqual([]);

    const { config } = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    const app = await buildApp(config, { db: d.db, logger: false });
    try {
      const merchant = await createTestMerchant(d.db);
      const customer = await createTestCustomer(d.db, { merchant, points: 10 });
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/integration/customers/resolve',
        headers: { 'x-api-key': merchant.apiKey },
        payload: { phone: customer.phone },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('the API process (production) starts on a schema a newer release expanded, warns, and serves', async () => {
    const port = await findFreePort();
    const api = await startApi({ cwd: ROOT, port, env: productionEnv(newer, port), readyTimeoutMs: 90_000 });
    processes.push(api);
    expect(api.tail().join('\n')).toContain(`does not know (${NEXT})`);
    const merchant = await createTestMerchant(newer.db);
    const customer = await createTestCustomer(newer.db, { merchant, points: 10 });
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/integration/customers/resolve`, {
      method: 'POST',
      headers: { 'x-api-key': merchant.apiKey, 'content-type': 'application/json' },
      body: JSON.stringify({ phone: customer.phone }),
    });
    expect(res.status).toBe(200);
  }, 120_000);
});

describe('a schema older than the release', () => {
  it('the API and the worker (production) refuse to start, name the pending migration and migrate nothing', async () => {
    const d = await database();
    await sql`delete from kysely_migration where name = ${LATEST}`.execute(d.db);
    const port = await findFreePort();
    const env = { ...productionEnv(d, port), WORKERS_ENABLED: '1', WORKER_PORT: '0' };
    const children = [
      spawnNodeScript({ cwd: ROOT, script: 'src/server.ts', env: { ...env, WORKERS_ENABLED: '0' } }),
      spawnNodeScript({ cwd: ROOT, script: 'src/worker.ts', env }),
    ];
    for (const child of children) {
      await expect.poll(() => child.exitReason(), { timeout: 60_000, interval: 200 }).not.toBeNull();
      expect(child.exitReason(), child.tail().join('\n')).toBe('code 1');
      const output = child.tail().join('\n');
      expect(output).toContain(
        `The database schema is older than this release: 1 migration pending (${LATEST})`,
      );
      expect(output).toContain('npm run db:migrate');
      expect(output).not.toMatch(/^\s+at /m);
    }
    expect((await readSchemaState(d.db)).pending).toEqual([LATEST]);
  }, 90_000);
});

describe('db:status and db:migrate on a schema a newer release migrated', () => {
  it('db:status lists the applied migrations this release does not know, as JSON and for people', async () => {
    const [json, human] = await Promise.all([
      spawnCli(newer.url, ['db:status', '--json']),
      spawnCli(newer.url, ['db:status']),
    ]);
    expect(json.code, json.stderr).toBe(0);
    const status = JSON.parse(json.stdout);
    expect(status.pending).toEqual([]);
    expect(status.migrations.map((m: { name: string }) => m.name)).toEqual(NAMES);
    expect(status.unknown).toEqual([{ name: NEXT, appliedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) }]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^${NEXT}\\s+applied \\S+\\s+NOT KNOWN to this release`, 'm'));
    expect(human.stdout).toContain(`${NAMES.length} applied, 0 pending, 1 unknown to this release`);
  }, 90_000);

  it('db:migrate applies nothing and succeeds, noting the unknown migration', async () => {
    const result = await spawnCli(newer.url, ['db:migrate', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ applied: [] });
    expect(result.stderr).toContain(NEXT);
  }, 90_000);
});
