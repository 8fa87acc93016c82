import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../src/db/embedded.js';
import { killProcess, startProcess, type TestProcess } from './helpers/process.js';

// `npm start` on a fresh machine (embedded PostgreSQL) stopped the way people stop it: Ctrl-C in a
// terminal (SIGINT to the whole process group, Postgres's included if it shared the group) and
// SIGTERM to npm. Both must end with exit code 0, no stack trace and no PostgreSQL left running.
// And when PostgreSQL dies under it (killed, out of memory), it stops with exit code 1 and says why
// instead of serving 503s and logging refused connections forever.

let dataDir: string;
let dbPort: number;
const started: TestProcess[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'loyalty-start-pg-'));
  // As root, PostgreSQL runs as the `postgres` user, which must be able to enter this folder.
  chmodSync(dataDir, 0o755);
  dbPort = await findFreePort();
});
afterAll(async () => {
  for (const p of started) {
    // Only the process groups this file started, by their pid.
    if (p.child.pid && p.child.exitCode === null) process.kill(-p.child.pid, 'SIGKILL');
    await killProcess(p);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

/** `npm start` in a process group of its own, as a terminal runs it; resolves once it is serving. */
async function npmStart(): Promise<TestProcess> {
  const port = await findFreePort();
  // --ignore-scripts skips only prestart (the web build), not start itself.
  const p = startProcess('npm', ['start', '--ignore-scripts'], {
    detached: true,
    env: {
      EMBEDDED_PG_DIR: path.join(dataDir, 'data'),
      EMBEDDED_PG_PORT: String(dbPort),
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    },
  });
  started.push(p);
  await p.waitForOutput(/Press Ctrl-C to stop/, 150_000);
  return p;
}

function isPortOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function expectCleanStop(p: TestProcess) {
  expect(await p.exited, p.output()).toBe(0);
  expect(p.output()).not.toMatch(/Unhandled|uncaught|Error:|\n\s+at /i);
  expect(existsSync(path.join(dataDir, 'data', 'postmaster.pid'))).toBe(false);
  expect(await isPortOpen(dbPort)).toBe(false);
}

describe('npm start stops cleanly', () => {
  it('on Ctrl-C (SIGINT to the whole process group)', async () => {
    const p = await npmStart();
    // biome-ignore lint/style/noNonNullAssertion: a started process has a pid
    process.kill(-p.child.pid!, 'SIGINT');
    await expectCleanStop(p);
  }, 240_000);

  it('on SIGTERM to npm, with the data directory of the previous run', async () => {
    const p = await npmStart();
    p.child.kill('SIGTERM');
    await expectCleanStop(p);
  }, 240_000);
});

describe('npm start without its database', () => {
  it('stops with exit code 1 when the embedded PostgreSQL is killed', async () => {
    const p = await npmStart();
    const postmasterPid = Number(
      readFileSync(path.join(dataDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0],
    );
    expect(postmasterPid).toBeGreaterThan(0);
    process.kill(postmasterPid, 'SIGKILL');
    expect(await p.exited, p.output()).toBe(1);
    expect(p.output()).toMatch(/PostgreSQL exited on its own \(SIGKILL\)/);
    expect(p.output()).toMatch(/embedded PostgreSQL lost: shutting down/);
  }, 240_000);
});
