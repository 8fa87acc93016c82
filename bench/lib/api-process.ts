import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

// The processes under test run on their own, the way they run in production: `node --import tsx
// src/server.ts` (the API) and `node --import tsx src/worker.ts` (an outbox worker) with the scratch
// database, so the load generator does not share their event loop.

/** A running child process of the benchmark. */
export interface ChildHandle {
  pid: number | undefined;
  /** The last lines the child printed (stdout and stderr). */
  tail(): string[];
  /** Chunks the child printed after markReady() (warnings and errors at LOG_LEVEL=warn). */
  linesSinceReady(): number;
  /** From now on printed chunks are counted by linesSinceReady(). */
  markReady(): void;
  /** Why the child is gone (spawn error, exit code or signal); null while it runs. */
  exitReason(): string | null;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the child has exited. */
  stop(): Promise<void>;
}

/** The running API child. */
export interface ApiProcess {
  pid: number | undefined;
  port: number;
  tail(): string[];
  linesSinceReady(): number;
  stop(): Promise<void>;
}

const TAIL_LINES = 40;

function getStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

async function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  const exited = once(child, 'exit').then(() => true);
  return Promise.race([exited, sleep(ms).then(() => false)]);
}

/** Starts `node [flags] --import tsx <script>` in `cwd` with `env` on top of this process's. */
export function spawnNodeScript(options: {
  cwd: string;
  script: string;
  env: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: string[];
  /** How long stop() waits after SIGTERM before SIGKILL. */
  graceMs?: number;
  /** Called with every line the child prints (stdout and stderr). */
  onLine?: (line: string) => void;
}): ChildHandle {
  const lines: string[] = [];
  let isReady = false;
  let printedAfterReady = 0;
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), '--import', 'tsx', options.script], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (line: string) => {
    if (line.trim() === '') return;
    options.onLine?.(line);
    lines.push(line);
    if (lines.length > TAIL_LINES * 4) lines.splice(0, lines.length - TAIL_LINES);
  };
  // A chunk may end inside a line: its rest is kept (per stream) until the next chunk completes it.
  const collect = (stream: NodeJS.ReadableStream | null) => {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      if (isReady) printedAfterReady += 1;
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) keep(line);
    });
    stream?.on('end', () => keep(partial));
  };
  collect(child.stdout);
  collect(child.stderr);
  let spawnError: Error | null = null;
  child.on('error', (error) => {
    spawnError = error;
  });

  return {
    pid: child.pid,
    tail: () => lines.slice(-TAIL_LINES),
    linesSinceReady: () => printedAfterReady,
    markReady: () => {
      isReady = true;
    },
    exitReason: () => {
      if (spawnError) return String(spawnError);
      if (child.exitCode !== null) return `code ${child.exitCode}`;
      if (child.signalCode !== null) return `signal ${child.signalCode}`;
      return null;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      if (await waitForExit(child, options.graceMs ?? 5_000)) return;
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
    },
  };
}

/** The environment of an API under test: loopback, quiet, no workers, no demo data. */
export function apiEnv(options: {
  databaseUrl: string;
  port: number;
  encryptionKey: string;
}): Record<string, string> {
  return {
    DATABASE_URL: options.databaseUrl,
    PORT: String(options.port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    SEED_DEMO: '0',
    NODE_ENV: 'development',
    WORKERS_ENABLED: '0',
    APP_ENCRYPTION_KEY: options.encryptionKey,
  };
}

/** Starts the API on `port` against `databaseUrl` and waits until GET /ready answers 200. */
export async function startApi(options: {
  cwd: string;
  port: number;
  env: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: string[];
  readyTimeoutMs?: number;
  /** Called with every line the API prints. */
  onLine?: (line: string) => void;
}): Promise<ApiProcess> {
  const child = spawnNodeScript({
    cwd: options.cwd,
    script: 'src/server.ts',
    env: options.env,
    nodeFlags: options.nodeFlags,
    onLine: options.onLine,
  });
  const api: ApiProcess = {
    pid: child.pid,
    port: options.port,
    tail: child.tail,
    linesSinceReady: child.linesSinceReady,
    stop: child.stop,
  };

  const deadline = performance.now() + (options.readyTimeoutMs ?? 60_000);
  while (performance.now() < deadline) {
    const exited = child.exitReason();
    if (exited !== null) {
      throw new Error(`the API exited before it was ready (${exited}):\n${api.tail().join('\n')}`);
    }
    if ((await getStatus(options.port, '/ready')) === 200) {
      child.markReady();
      return api;
    }
    await sleep(200);
  }
  await api.stop();
  throw new Error(
    `the API was not ready within ${options.readyTimeoutMs ?? 60_000} ms:\n${api.tail().join('\n')}`,
  );
}
