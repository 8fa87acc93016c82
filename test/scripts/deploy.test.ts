import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// scripts/deploy.sh (and restore.sh in compose mode) with a stand-in for the docker command
// (test/fakes/docker, first on PATH: it logs every call and keeps the tag of the last `compose up`)
// and a stand-in API whose health follows that tag, so a release can be made to fail its smoke check.
// The .env.production is generated from .env.production.example; config:check runs for real.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const METRICS_TOKEN = randomBytes(24).toString('hex');
// What the operator put in place of every change-me (passwords, tokens) in the env file.
const FILLED_SECRET = randomBytes(24).toString('hex');
const BAD_TAGS = new Set(['rel-3-broken']);

let work: string;
let logFile: string;
let stateDir: string;
let envFile: string;
let releaseLog: string;
let backupDir: string;
let server: http.Server;
let baseUrl: string;

interface RunResult {
  code: number | null;
  output: string;
}

function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: '1' };
  for (const [key, value] of Object.entries(process.env)) {
    if (
      value === undefined ||
      /^(DATABASE_URL|BASE_URL|METRICS_TOKEN|BACKUP_|DEPLOY_|FAKE_DOCKER_)/.test(key)
    ) {
      continue;
    }
    env[key] = value;
  }
  return env;
}

function run(script: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(`scripts/${script}`, args, {
      cwd: ROOT,
      env: {
        ...baseEnv(),
        PATH: `${path.join(work, 'bin')}:${process.env.PATH ?? ''}`,
        FAKE_DOCKER_LOG: logFile,
        FAKE_DOCKER_STATE: stateDir,
        ENV_FILE: envFile,
        COMPOSE_FILE: path.join(ROOT, 'docker-compose.production.yml'),
        RELEASE_LOG: releaseLog,
        BACKUP_DIR: backupDir,
        BASE_URL: baseUrl,
        DEPLOY_WAIT_SECONDS: '1',
        DEPLOY_MIN_FREE_MB: '1',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The calls since the log was last cleared. */
function calls(): string[] {
  return existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter(Boolean) : [];
}

function clearCalls(): void {
  writeFileSync(logFile, '');
}

/** Index of the first call containing `needle` (after `from`); -1 when absent. */
function indexOf(log: string[], needle: string, from = 0): number {
  const i = log.slice(from).findIndex((line) => line.includes(needle));
  return i < 0 ? -1 : i + from;
}

function releases(): string[][] {
  return readFileSync(releaseLog, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split('\t'));
}

function currentTag(): string {
  const file = path.join(stateDir, 'current_tag');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
}

const DOCKER_BACKUP = 'exec -T postgres pg_dump -U loyalty -d loyalty --no-owner --no-privileges';

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'loyalty-deploy-test-'));
  mkdirSync(path.join(work, 'bin'));
  symlinkSync(path.join(ROOT, 'test/fakes/docker'), path.join(work, 'bin/docker'));
  stateDir = path.join(work, 'state');
  mkdirSync(stateDir);
  logFile = path.join(work, 'docker.log');
  releaseLog = path.join(work, 'releases/production.log');
  backupDir = path.join(work, 'backups');
  envFile = path.join(work, '.env.production');
  // A release made before these tests: its image is on the machine and the history records it.
  mkdirSync(path.dirname(releaseLog));
  writeFileSync(
    releaseLog,
    '# timestamp\ttag\tcommit\tresult\tnote\n2024-01-01T00:00:00Z\trel-0\t0000000\tdeployed\tbackup x\n',
  );
  writeFileSync(path.join(stateDir, 'images'), 'loyalty-platform:rel-0\n');
  const example = readFileSync(path.join(ROOT, '.env.production.example'), 'utf8');
  writeFileSync(
    envFile,
    example
      .replaceAll('change-me', FILLED_SECRET)
      .replace(/^APP_ENCRYPTION_KEY=.*$/m, `APP_ENCRYPTION_KEY=${'cd'.repeat(32)}`)
      .replace(/^METRICS_TOKEN=.*$/m, `METRICS_TOKEN=${METRICS_TOKEN}`),
  );

  // The API as the containers would serve it: healthy unless the running tag is a bad release.
  server = http.createServer((request, response) => {
    appendFileSync(logFile, `HTTP ${request.method} ${request.url} tag=${currentTag()}\n`);
    if (BAD_TAGS.has(currentTag())) {
      response.writeHead(503, { 'content-type': 'application/json' }).end('{"status":"unavailable"}');
      return;
    }
    if (request.url === '/metrics') {
      if (request.headers['x-metrics-token'] !== METRICS_TOKEN) {
        response.writeHead(401).end('{"error":{"code":"unauthorized","message":"token"}}');
        return;
      }
      const names = [
        'http_requests_total',
        'http_request_duration_seconds',
        'http_slow_requests_total',
        'loyalty_outbox_pending',
        'loyalty_outbox_dead_total',
      ];
      response.writeHead(200).end(names.map((n) => `# TYPE ${n} counter\n${n} 0\n`).join(''));
      return;
    }
    const body =
      request.url === '/ready'
        ? '{"status":"ok","checks":{"postgres":"ok","redis":"ok"}}'
        : '{"status":"ok"}';
    response.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('scripts/deploy.sh production', () => {
  it('deploy: preflight, backup, build, migrate, restart, smoke check, in that order', async () => {
    clearCalls();
    const result = await run('deploy.sh', ['production', 'deploy'], { DEPLOY_TAG: 'rel-1' });
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('Deployed loyalty-platform:rel-1');
    for (const step of ['env-file', 'placeholders', 'compose-file', 'disk', 'database', 'release']) {
      expect(result.output).toMatch(new RegExp(`^${step}\\s+PASS`, 'm'));
    }
    const log = calls();
    const config = indexOf(log, 'config -q');
    const ready = indexOf(log, 'exec -T postgres pg_isready');
    const backup = indexOf(log, DOCKER_BACKUP);
    const build = indexOf(log, 'docker build -t loyalty-platform:rel-1 ');
    const migrate = indexOf(log, 'db:migrate');
    const up = indexOf(log, 'up -d --no-deps api worker');
    const smoke = indexOf(log, 'HTTP GET /health', up);
    const latest = indexOf(log, 'docker tag loyalty-platform:rel-1 loyalty-platform:latest');
    expect(log[migrate]).toMatch(
      /^IMAGE_TAG=rel-1 docker compose .* run --rm --no-deps -T api npm run -s db:migrate$/,
    );
    expect(log[up]).toMatch(/^IMAGE_TAG=rel-1 /);
    expect([config, ready].every((i) => i >= 0 && i < backup)).toBe(true);
    expect(backup).toBeGreaterThanOrEqual(0);
    expect(build).toBeGreaterThan(backup);
    expect(migrate).toBeGreaterThan(build);
    expect(up).toBeGreaterThan(migrate);
    expect(smoke).toBeGreaterThan(up);
    expect(latest).toBeGreaterThan(smoke);
    expect(log.filter((l) => l.includes('HTTP GET /metrics'))).toHaveLength(2);
    expect(readdirSync(backupDir).filter((f) => /^backup_\d{8}_\d{6}(_\d+)?\.sql\.gz$/.test(f))).toHaveLength(
      1,
    );
    const [time, tag, commit, outcome] = releases().at(-1) ?? [];
    expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect([tag, outcome]).toEqual(['rel-1', 'deployed']);
    expect(commit).toMatch(/^[0-9a-f]{4,}$/);
  });

  it('status: containers, current release, migrations and outbox', async () => {
    const result = await run('deploy.sh', ['production', 'status']);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/loyalty-api-1\s+loyalty-platform:rel-1/);
    expect(result.output).toMatch(/current:\s+loyalty-platform:rel-1/);
    expect(result.output).toMatch(/previous:\s+loyalty-platform:rel-0/);
    expect(result.output).toContain('"name":"0001_core"');
    expect(result.output).toMatch(/pending \(waiting to send\)\s+3/);
    expect(result.output).toMatch(/dead \(gave up, replayable\)\s+2/);
    expect(result.output).toMatch(/dead ever \(dead_total\)\s+5/);
    expect(calls().some((l) => l.includes('exec -T api npm run -s db:status'))).toBe(true);
  });

  it('rollback: back to the previous successful release, then smoke-checked', async () => {
    clearCalls();
    const result = await run('deploy.sh', ['production', 'rollback']);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('Rolled back: api and worker run loyalty-platform:rel-0');
    const log = calls();
    const up = indexOf(log, 'up -d --no-deps api worker');
    expect(log[up]).toMatch(/^IMAGE_TAG=rel-0 /);
    expect(indexOf(log, 'HTTP GET /health', up)).toBeGreaterThan(up);
    expect(indexOf(log, 'docker tag loyalty-platform:rel-0 loyalty-platform:latest')).toBeGreaterThan(up);
    expect(log.some((l) => l.includes('docker build') || l.includes('db:migrate'))).toBe(false);
    expect(releases().at(-1)?.slice(1, 4)).toEqual(['rel-0', expect.any(String), 'rollback']);
    expect(currentTag()).toBe('rel-0');

    const again = await run('deploy.sh', ['production', 'rollback']);
    expect(again.code).toBe(1);
    expect(again.output).toContain('no previous successful release');
  });

  it('a release that fails its smoke check is rolled back automatically, loudly, exit 1', async () => {
    clearCalls();
    const result = await run('deploy.sh', ['production', 'deploy'], { DEPLOY_TAG: 'rel-3-broken' });
    expect(result.code).toBe(1);
    expect(result.output).toContain(
      'RELEASE rel-3-broken FAILED: SMOKE CHECK FAILED. ROLLING BACK AUTOMATICALLY TO rel-0',
    );
    expect(result.output).toContain(
      'ROLLED BACK AUTOMATICALLY: api and worker run loyalty-platform:rel-0 again',
    );
    const log = calls();
    const upBad = indexOf(log, 'up -d --no-deps api worker');
    const migrate = indexOf(log, 'db:migrate');
    const badSmoke = indexOf(log, 'HTTP GET /health tag=rel-3-broken');
    const upBack = indexOf(log, 'up -d --no-deps api worker', badSmoke);
    const goodSmoke = indexOf(log, 'HTTP GET /health tag=rel-0', upBack);
    expect(migrate).toBeLessThan(upBad);
    expect(log[upBad]).toMatch(/^IMAGE_TAG=rel-3-broken /);
    expect(badSmoke).toBeGreaterThan(upBad);
    expect(log[upBack]).toMatch(/^IMAGE_TAG=rel-0 /);
    expect(goodSmoke).toBeGreaterThan(upBack);
    expect(log.some((l) => l.includes('docker tag loyalty-platform:rel-3-broken'))).toBe(false);
    expect(currentTag()).toBe('rel-0');
    expect(
      releases()
        .slice(-2)
        .map((r) => [r[1], r[3]]),
    ).toEqual([
      ['rel-3-broken', 'failed'],
      ['rel-0', 'auto_rollback'],
    ]);
    const status = await run('deploy.sh', ['production', 'status']);
    expect(status.output).toMatch(/current:\s+loyalty-platform:rel-0/);
  });

  it('failed migrations stop the release before anything restarts', async () => {
    clearCalls();
    const result = await run('deploy.sh', ['production', 'deploy'], {
      DEPLOY_TAG: 'rel-4',
      FAKE_DOCKER_FAIL: 'db:migrate',
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain('migrations failed');
    expect(calls().some((l) => l.includes('up -d'))).toBe(false);
    expect(releases().at(-1)?.slice(3)).toEqual(['failed', 'migrations failed']);
  });

  it('preflight refuses an invalid or missing env file and changes nothing', async () => {
    const bad = path.join(work, '.env.bad');
    writeFileSync(
      bad,
      `${readFileSync(envFile, 'utf8')}\nAPP_ENCRYPTION_KEY=not-a-key\nLOG_LEVEL=loud\nADMIN_API_TOKEN=change-me\n`,
    );
    const before = releases().length;
    clearCalls();
    const invalid = await run('deploy.sh', ['production', 'deploy'], { ENV_FILE: bad, DEPLOY_TAG: 'rel-5' });
    expect(invalid.code).toBe(1);
    expect(invalid.output).toMatch(
      /^env-file\s+FAIL .*config:check of \.env\.bad failed: .*APP_ENCRYPTION_KEY/m,
    );
    expect(invalid.output).toMatch(/^env-file\s+FAIL .*LOG_LEVEL/m);
    expect(invalid.output).toMatch(/^placeholders\s+FAIL .*ADMIN_API_TOKEN/m);
    expect(invalid.output).toContain('preflight failed: nothing was changed');

    const missing = await run('deploy.sh', ['production', 'deploy'], {
      ENV_FILE: path.join(work, '.env.missing'),
    });
    expect(missing.code).toBe(1);
    expect(missing.output).toMatch(/^env-file\s+FAIL .*is missing/m);
    const log = calls();
    expect(log.some((l) => /pg_dump|docker build|db:migrate|up -d/.test(l))).toBe(false);
    expect(releases()).toHaveLength(before);
  });
});

/** backup.sh in compose mode (pg_dump in the postgres container); returns the backup's path. */
async function composeBackup(): Promise<string> {
  const result = await run('backup.sh', [envFile, path.join(ROOT, 'docker-compose.production.yml')]);
  expect(result.code, result.output).toBe(0);
  return result.output.split('\n').find((line) => line.startsWith('/')) ?? '';
}

describe('backup scripts in compose mode (through the postgres container)', () => {
  it('backup.sh dumps inside the container; backup-verify.sh restores into a scratch database there', async () => {
    clearCalls();
    const backup = await composeBackup();
    expect(calls()).toEqual([
      expect.stringMatching(new RegExp(`docker compose --env-file \\S+ -f \\S+ ${DOCKER_BACKUP}$`)),
    ]);
    expect(existsSync(`${backup}.sha256`)).toBe(true);
    clearCalls();
    const result = await run('backup-verify.sh', [
      backup,
      envFile,
      path.join(ROOT, 'docker-compose.production.yml'),
    ]);
    expect(result.code, result.output).toBe(0);
    const scratch = /Scratch database (\S+)/.exec(result.output)?.[1] ?? '';
    expect(scratch).toMatch(/^loyalty_verify_/);
    const log = calls();
    const create = indexOf(log, `create database "${scratch}"`);
    const fill = indexOf(log, `exec -T postgres psql -X -q -v ON_ERROR_STOP=1 -U loyalty -d ${scratch}`);
    const status = indexOf(
      log,
      `exec -T -e DATABASE_URL=postgres://loyalty:${FILLED_SECRET}@postgres:5432/${scratch}`,
    );
    const drop = indexOf(log, `drop database if exists "${scratch}" with (force)`);
    expect(create).toBeGreaterThanOrEqual(0);
    expect(fill).toBeGreaterThan(create);
    expect(log[status]).toContain('api npm run -s db:status -- --json');
    expect(drop).toBeGreaterThan(status);
    expect(result.output).toMatch(/^migrations\s+PASS .*0001_core \(= this code's latest\)/m);
  });
});

describe('scripts/restore.sh in compose mode', () => {
  it('verifies, stops api and worker, restores, migrates, starts them and smoke-checks', async () => {
    const backup = await composeBackup();
    clearCalls();
    const result = await run('restore.sh', [
      backup,
      '--yes',
      envFile,
      path.join(ROOT, 'docker-compose.production.yml'),
    ]);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('checksum: ok');
    const log = calls();
    const safety = indexOf(log, DOCKER_BACKUP);
    const stop = indexOf(log, 'stop api worker');
    const restore = indexOf(
      log,
      'exec -T postgres psql -X -q -v ON_ERROR_STOP=1 -U loyalty -d loyalty --single-transaction',
    );
    const migrate = indexOf(log, 'run --rm --no-deps -T api npm run -s db:migrate');
    const start = indexOf(log, 'up -d api worker');
    const smoke = indexOf(log, 'HTTP GET /health', start);
    expect(safety).toBeGreaterThanOrEqual(0);
    expect(stop).toBeGreaterThan(safety);
    expect(restore).toBeGreaterThan(stop);
    expect(migrate).toBeGreaterThan(restore);
    expect(start).toBeGreaterThan(migrate);
    expect(smoke).toBeGreaterThan(start);
    const fed = readFileSync(path.join(stateDir, 'psql_stdin'), 'utf8');
    const drop = fed.indexOf('drop schema if exists public cascade;\ncreate schema public;\n');
    expect(drop).toBeGreaterThanOrEqual(0);
    expect(fed.indexOf('PostgreSQL database dump complete')).toBeGreaterThan(drop);
  });
});
