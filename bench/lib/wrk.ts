import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Percentiles } from './stats.js';

// wrk (Debian package `wrk`) as a second load generator for the resolve and commit phases. The Node generator
// spends ~0.05 ms of CPU per request on the same two cores as the API and PostgreSQL; wrk, a C
// event loop, far less, so the phase it drives shows what the API serves when the load costs
// little (the issue's own figures were taken with wrk).

/** Why wrk cannot run here, or null when it can. */
export function wrkMissing(): string | null {
  const run = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  return `${run.stdout ?? ''}${run.stderr ?? ''}`.includes('wrk')
    ? null
    : 'wrk not found: apt-get install wrk';
}

/** What one wrk run measured. */
export interface WrkResult {
  completed: number;
  /** 2xx and 3xx answers. */
  ok: number;
  non2xx: number;
  /** Connect, read, write errors and timeouts. */
  errors: number;
  elapsedMs: number;
  latencyMs: Percentiles;
}

/** Lua long-bracket string: JSON bodies never hold `]==]`. */
function luaString(text: string): string {
  if (text.includes(']==]')) throw new Error('a body holds ]==]');
  return `[==[${text}]==]`;
}

/** In a body or a header value, replaced by the request's number (unique within one wrk run). */
export const WRK_SEQ = '@SEQ@';

/**
 * The script: POSTs the bodies in turn with the headers, WRK_SEQ in either replaced by the request's
 * number; prints exact figures when done.
 */
function script(options: { path: string; headers: Record<string, string>; bodies: string[] }): string {
  const headers = Object.entries({ 'Content-Type': 'application/json', ...options.headers })
    .map(([name, value]) => `[ ${luaString(name)} ] = ${luaString(value)}`)
    .join(', ');
  const numbered =
    options.bodies.some((body) => body.includes(WRK_SEQ)) ||
    Object.values(options.headers).some((value) => value.includes(WRK_SEQ));
  const request = numbered
    ? `
  local seq = tostring(i)
  local h = {}
  for name, value in pairs(headers) do h[name] = (string.gsub(value, "${WRK_SEQ}", seq)) end
  local body = (string.gsub(bodies[(i % #bodies) + 1], "${WRK_SEQ}", seq))
  return wrk.format("POST", ${luaString(options.path)}, h, body)`
    : `
  return wrk.format("POST", ${luaString(options.path)}, headers, bodies[(i % #bodies) + 1])`;
  return `
local bodies = { ${options.bodies.map(luaString).join(',\n')} }
local headers = { ${headers} }
local i = 0
request = function()
  i = i + 1${request}
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d %d %d %f\\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
`;
}

/**
 * Runs wrk against 127.0.0.1:`port` for `seconds` with `connections` connections on one thread,
 * POSTing the bodies in turn (WRK_SEQ numbered), and returns what it measured.
 */
export async function runWrk(options: {
  port: number;
  path: string;
  headers: Record<string, string>;
  bodies: string[];
  connections: number;
  seconds: number;
}): Promise<WrkResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-wrk-'));
  try {
    const file = path.join(dir, 'load.lua');
    writeFileSync(file, script(options));
    const args = [
      '-t1',
      `-c${options.connections}`,
      `-d${options.seconds}s`,
      '--timeout',
      '10s',
      '-s',
      file,
      `http://127.0.0.1:${options.port}${options.path}`,
    ];
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}: ${text}`)),
      );
    });
    const line = output.split('\n').find((l) => l.startsWith('WRK '));
    if (!line) throw new Error(`wrk printed no summary: ${output}`);
    const [requests, durationUs, status, errors, p50, p95, p99, max, mean] = line
      .slice(4)
      .trim()
      .split(/\s+/)
      .map(Number) as number[];
    const ms = (us: number | undefined) => (us ?? 0) / 1000;
    return {
      completed: requests ?? 0,
      ok: (requests ?? 0) - (status ?? 0),
      non2xx: status ?? 0,
      errors: errors ?? 0,
      elapsedMs: ms(durationUs),
      latencyMs: { p50: ms(p50), p95: ms(p95), p99: ms(p99), max: ms(max), mean: ms(mean) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
