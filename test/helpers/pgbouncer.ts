import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFreePort } from '../../src/db/embedded.js';

// PgBouncer (Debian package `pgbouncer`) started by a test in front of the test PostgreSQL server,
// in transaction pooling mode, on a free port with a config of its own.

/** Why PgBouncer tests cannot run here, or null when they can. */
export function pgbouncerMissing(): string | null {
  const run = spawnSync('pgbouncer', ['--version'], { encoding: 'utf8' });
  return run.status === 0 ? null : 'pgbouncer not found: apt-get install pgbouncer';
}

/** PgBouncer's version as [major, minor] ([0, 0] when it cannot tell). */
export function pgbouncerVersion(): [number, number] {
  const run = spawnSync('pgbouncer', ['--version'], { encoding: 'utf8' });
  const match = /PgBouncer (\d+)\.(\d+)/i.exec(run.stdout ?? '');
  return match ? [Number(match[1]), Number(match[2])] : [0, 0];
}

/**
 * Whether this PgBouncer keeps named prepared statements per client in transaction mode
 * (max_prepared_statements, 1.21+); Debian 12's is 1.18.
 */
export function pgbouncerKeepsPreparedStatements(): boolean {
  const [major, minor] = pgbouncerVersion();
  return major > 1 || (major === 1 && minor >= 21);
}

/** A running PgBouncer. */
export interface PgBouncer {
  port: number;
  /** `serverUrl`'s database `name` through PgBouncer. */
  urlFor(databaseUrl: string): string;
  /** What it printed (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts PgBouncer for every database of the server at `serverUrl` (trust authentication, as the
 * test server has). `defaultPoolSize` server connections per database and user.
 */
export async function startPgBouncer(options: {
  serverUrl: string;
  poolMode?: 'transaction' | 'session';
  defaultPoolSize?: number;
  /** max_prepared_statements, where this PgBouncer has the setting (1.21+); default 100 there. */
  maxPreparedStatements?: number;
}): Promise<PgBouncer> {
  const server = new URL(options.serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const port = await findFreePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'pgbouncer-'));
  // PgBouncer refuses to run as root; it then switches to the postgres user, who must read these.
  chmodSync(dir, 0o755);
  // The server's password (the embedded server has one) goes to PgBouncer's own server logins.
  const password = decodeURIComponent(server.password);
  writeFileSync(path.join(dir, 'users.txt'), `"${user}" "${password}"\n`, { mode: 0o644 });
  writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || 5432}${password ? ` password=${password}` : ''}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      `pool_mode = ${options.poolMode ?? 'transaction'}`,
      `default_pool_size = ${options.defaultPoolSize ?? 4}`,
      'max_client_conn = 1000',
      ...(pgbouncerKeepsPreparedStatements()
        ? [`max_prepared_statements = ${options.maxPreparedStatements ?? 100}`]
        : []),
      // pg sends statement_timeout (DB_STATEMENT_TIMEOUT_MS) and idle_in_transaction_session_timeout
      // (DB_IDLE_IN_TRANSACTION_TIMEOUT_MS) at start-up; PgBouncer cannot pass them on.
      'ignore_startup_parameters = extra_float_digits,options,statement_timeout,idle_in_transaction_session_timeout',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn(
    'pgbouncer',
    [...(asRoot ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let printed = '';
  child.stdout?.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      await Promise.race([exited, sleep(5_000).then(() => child.kill('SIGKILL'))]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i += 1) {
    const isUp = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (isUp) break;
    if (i > 100 || child.exitCode !== null) {
      await stop();
      throw new Error(`pgbouncer did not start: ${printed}`);
    }
    await sleep(50);
  }
  return {
    port,
    urlFor(databaseUrl) {
      const url = new URL(databaseUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.toString();
    },
    output: () => printed,
    stop,
  };
}
