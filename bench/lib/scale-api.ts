import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { Database } from '../../src/db/database.js';
import { findFreePort } from '../../src/db/embedded.js';
import { createPortalUser } from '../../src/modules/auth/auth.service.js';
import { type ApiProcess, apiEnv, startApi } from './api-process.js';
import { HttpClient, keepAliveAgent } from './http.js';
import { RssSampler } from './soak.js';
import { PhaseRecorder } from './stats.js';

// The portal calls of `npm run bench:scale` through HTTP, against the API as its own process
// (`node --import tsx src/server.ts`) on the filled database: what a merchant's browser waits for.

/** The API on the filled database and an owner of the measured merchant signed in. */
export interface ScaleApi {
  api: ApiProcess;
  client: HttpClient;
  headers: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts the API on `url` and signs in a new owner of `merchantId` through the login route. */
export async function startScaleApi(
  db: Database,
  options: { cwd: string; url: string; merchantId: string },
): Promise<ScaleApi> {
  const port = await findFreePort();
  const api = await startApi({
    cwd: options.cwd,
    port,
    env: apiEnv({ databaseUrl: options.url, port, encryptionKey: randomBytes(32).toString('hex') }),
  });
  const agent = keepAliveAgent(4);
  const client = new HttpClient(port, agent, 120_000);
  try {
    const email = `bench-scale-${randomUUID().slice(0, 8)}@example.com`;
    const password = randomUUID();
    await createPortalUser(db, { merchantId: options.merchantId, email, password, role: 'owner' });
    const login = await client.request('POST', '/api/v1/portal/auth/login', { email, password });
    if (login.status !== 200) throw new Error(`portal login answered ${login.status}: ${login.body}`);
    const { accessToken } = JSON.parse(login.body) as { accessToken: string };
    return {
      api,
      client,
      headers: { authorization: `Bearer ${accessToken}` },
      async stop() {
        agent.destroy();
        await api.stop();
      },
    };
  } catch (error) {
    agent.destroy();
    await api.stop();
    throw error;
  }
}

/** GET `path` `runs` times, one at a time; every answer must be 200. */
export async function measureGet(scale: ScaleApi, path: string, runs: number): Promise<PhaseRecorder> {
  const recorder = new PhaseRecorder();
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    try {
      const answer = await scale.client.request('GET', path, undefined, scale.headers);
      recorder.record(performance.now() - started, {
        status: answer.status,
        ...(answer.status === 200 ? {} : { message: answer.body.slice(0, 200) }),
      });
    } catch (error) {
      recorder.record(performance.now() - started, { status: 0, message: String(error) });
    }
  }
  return recorder;
}

/** One streamed export as the browser receives it. */
export interface ExportFigures {
  status: number;
  firstByteMs: number;
  totalMs: number;
  rows: number;
  bytes: number;
  rowsPerSecond: number;
  /** RSS of the API while the export ran (sampled every 50 ms), MiB. */
  rss: { startMiB: number | null; maxMiB: number | null; endMiB: number | null };
}

/** Downloads `path` (a CSV with a header row), reading it as it arrives, and samples the API's RSS. */
export function measureExport(scale: ScaleApi, path: string): Promise<ExportFigures> {
  const sampler = new RssSampler([{ name: 'api', pid: scale.api.pid }], 50);
  sampler.start();
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port: scale.api.port, path, headers: scale.headers, agent: false },
      (res) => {
        let firstByteMs = 0;
        let bytes = 0;
        let lines = 0;
        res.on('data', (chunk: Buffer) => {
          if (bytes === 0) firstByteMs = performance.now() - started;
          bytes += chunk.length;
          for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines += 1;
        });
        res.on('end', () => {
          const totalMs = performance.now() - started;
          const rss = sampler.stop()[0];
          const rows = Math.max(0, lines - 1);
          resolve({
            status: res.statusCode ?? 0,
            firstByteMs,
            totalMs,
            rows,
            bytes,
            rowsPerSecond: rows / (totalMs / 1000),
            rss: {
              startMiB: rss?.startMiB ?? null,
              maxMiB: rss?.maxMiB ?? null,
              endMiB: rss?.endMiB ?? null,
            },
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', (error) => {
      sampler.stop();
      reject(error);
    });
  });
}
