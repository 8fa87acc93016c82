import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

// The API under test runs as its own process, the way it runs in production: `node --import tsx
// src/server.ts` with the scratch database, so the load generator does not share its event loop.

/** The running API child. */
export interface ApiProcess {
  pid: number | undefined;
  port: number;
  /** The last lines the child printed (stdout and stderr). */
  tail(): string[];
  /** Lines the child printed after it became ready (warnings and errors at LOG_LEVEL=warn). */
  linesSinceReady(): number;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the child has exited. */
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

/** Starts the API on `port` against `databaseUrl` and waits until GET /ready answers 200. */
export async function startApi(options: {
  cwd: string;
  port: number;
  env: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: string[];
  readyTimeoutMs?: number;
}): Promise<ApiProcess> {
  const lines: string[] = [];
  let readyAt = -1;
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), '--import', 'tsx', 'src/server.ts'], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line);
      if (lines.length > TAIL_LINES * 4) lines.splice(0, lines.length - TAIL_LINES);
    }
  };
  let printedAfterReady = 0;
  child.stdout?.on('data', (chunk: Buffer) => {
    if (readyAt >= 0) printedAfterReady += 1;
    collect(chunk);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    if (readyAt >= 0) printedAfterReady += 1;
    collect(chunk);
  });
  let spawnError: Error | null = null;
  child.on('error', (error) => {
    spawnError = error;
  });

  const api: ApiProcess = {
    pid: child.pid,
    port: options.port,
    tail: () => lines.slice(-TAIL_LINES),
    linesSinceReady: () => printedAfterReady,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      if (await waitForExit(child, 5_000)) return;
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
    },
  };

  const deadline = performance.now() + (options.readyTimeoutMs ?? 60_000);
  while (performance.now() < deadline) {
    if (spawnError || child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `the API exited before it was ready (${spawnError ?? `code ${child.exitCode}`}):\n${api.tail().join('\n')}`,
      );
    }
    if ((await getStatus(options.port, '/ready')) === 200) {
      readyAt = performance.now();
      return api;
    }
    await sleep(200);
  }
  await api.stop();
  throw new Error(
    `the API was not ready within ${options.readyTimeoutMs ?? 60_000} ms:\n${api.tail().join('\n')}`,
  );
}
