import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { findFreePort } from '../../src/db/embedded.js';
import { type ProcessResult, runProcess } from '../helpers/process.js';

// The production path on a real Docker engine: scripts/deploy.sh builds the image from a copy of
// this working tree, migrates in it and runs `api` and `worker` from it beside PostgreSQL and Redis
// (the compose file's own services, on stand-in images built from Debian packages by prepare.sh);
// then a release that cannot start is rolled back by itself, and `rollback` goes back a release.
// docker-compose.production.yml is used as it is, but for the networking: every container shares
// the host's network and listens on 127.0.0.1 on free ports (several stacks and the machine's own
// PostgreSQL, Redis and servers can run side by side), and postgres/redis are the stand-in images.
// Skipped, saying why, only where the Docker engine cannot run (prepare.sh exits 3).

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCKER = '/usr/bin/docker';
const STANDIN_POSTGRES = 'loyalty-standin-postgres:15';
const STANDIN_REDIS = 'loyalty-standin-redis:7';
const MINUTE = 60_000;
// test/docker/bin first (docker-compose that runs one-off containers on the host network), then
// /usr/bin: Debian's docker CLI (20.10), which builds with BuildKit without buildx.
const PATH = `${path.join(ROOT, 'test/docker/bin')}:/usr/bin:${process.env.PATH ?? ''}`;

/** Runs a program here (or in `cwd`) with test/docker/bin and /usr/bin first on PATH. */
function run(command: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  return runProcess(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, NO_COLOR: '1', PATH, ...options.env },
  });
}

/** Why the stack cannot run here (the engine cannot start), or null; installs and starts it first. */
async function engineSkipReason(): Promise<string | null> {
  const started = Date.now();
  const result = await run('bash', [path.join(ROOT, 'test/docker/prepare.sh'), 'engine']);
  if (result.code === 0) {
    console.log(`docker engine ready in ${Math.round((Date.now() - started) / 1000)}s`);
    return null;
  }
  const reason = result.output.trim().split('\n').at(-1) ?? 'prepare.sh failed';
  if (result.code === 3) return reason;
  throw new Error(`test/docker/prepare.sh engine failed (exit ${result.code}):\n${result.output}`);
}

const SKIP = await engineSkipReason();
if (SKIP) console.warn(`test/docker/stack.test.ts skipped: ${SKIP}`);

let work = '';
let repo = '';
let project = '';
let ports: { api: number; worker: number; postgres: number; redis: number };
// Production refuses secrets shorter than 32 characters.
const secrets = { metrics: randomBytes(24).toString('hex'), admin: randomBytes(24).toString('hex') };
const releases: string[] = [];

const apiUrl = (route: string) => `http://127.0.0.1:${ports.api}${route}`;

function deploy(action: 'deploy' | 'rollback' | 'status', env: Record<string, string> = {}) {
  return run('scripts/deploy.sh', ['production', action], {
    cwd: repo,
    env: {
      BASE_URL: `http://127.0.0.1:${ports.api}`,
      DEPLOY_BUILD_NETWORK: 'host',
      DEPLOY_MIN_FREE_MB: '512',
      DEPLOY_WAIT_SECONDS: '120',
      ...env,
    },
  });
}

/** docker compose of the copy's production stack, through scripts/lib/common.sh like the scripts. */
function compose(...args: string[]) {
  const script =
    'PROG=stack-test; source scripts/lib/common.sh; ENV_FILE=$1 COMPOSE_FILE=$2; shift 2; compose "$@"';
  return run('bash', ['-c', script, 'compose', '.env.production', 'docker-compose.production.yml', ...args], {
    cwd: repo,
  });
}

async function git(...args: string[]): Promise<string> {
  const result = await run('git', args, { cwd: repo });
  if (result.code !== 0) throw new Error(`git ${args.join(' ')}: ${result.output}`);
  return result.output.trim();
}

/** Commits everything in the copy as a new release; returns its short commit (the image tag). */
async function commitRelease(message: string): Promise<string> {
  await git('add', '-A');
  await git('commit', '-q', '-m', message);
  const commit = await git('rev-parse', '--short', 'HEAD');
  releases.push(commit);
  return commit;
}

/** The image the service's container was created from, and whether it is running. */
async function container(service: 'api' | 'worker'): Promise<{ image: string; running: boolean }> {
  const id = (await compose('ps', '-q', service)).output.trim().split('\n').at(-1) ?? '';
  const inspect = await run(DOCKER, ['inspect', '--format', '{{.Config.Image}} {{.State.Running}}', id]);
  const [image = '', running = ''] = inspect.output.trim().split(' ');
  return { image, running: running === 'true' };
}

async function getJson(route: string, headers: Record<string, string> = {}) {
  const response = await fetch(apiUrl(route), { headers, signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

interface WorkerRow {
  workerId: string;
  startedAt: string;
  isAlive: boolean;
}

/** Waits until a worker started after `since` reports alive heartbeats (admin API); returns it. */
async function freshWorker(since: number): Promise<WorkerRow | undefined> {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    const system = await getJson('/api/v1/admin/system', { authorization: `Bearer ${secrets.admin}` }).catch(
      () => null,
    );
    const workers = (system?.body.workers ?? []) as WorkerRow[];
    const fresh = workers.find((w) => w.isAlive && Date.parse(w.startedAt) >= since - 5_000);
    if (fresh) return fresh;
    await setTimeout(2_000);
  }
  return undefined;
}

/** api and worker run from release `tag`, /ready is green and a worker started since `since` beats. */
async function expectStackOn(tag: string, since: number): Promise<void> {
  for (const service of ['api', 'worker'] as const) {
    expect(await container(service), service).toEqual({ image: `loyalty-platform:${tag}`, running: true });
  }
  expect((await getJson('/ready')).status).toBe(200);
  // Both processes name the release they run (tags are commits here).
  expect((await getJson('/health')).body.commit).toBe(tag);
  const worker = await fetch(`http://127.0.0.1:${ports.worker}/health`, {
    signal: AbortSignal.timeout(10_000),
  });
  expect(((await worker.json()) as { commit?: string }).commit).toBe(tag);
  expect(
    await freshWorker(since),
    `a heartbeat of a worker started since ${new Date(since).toISOString()}`,
  ).toBeDefined();
}

/** The release history: [timestamp, tag, commit, result, note] per line. */
function history(): string[][] {
  return readFileSync(path.join(repo, '.releases/production.log'), 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split('\t'));
}

/** A copy of this working tree (tracked and new files, as they are now) in its own git repository. */
async function copyWorkingTree(target: string): Promise<void> {
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
  });
  if (listed.code !== 0) throw new Error(`git ls-files: ${listed.output}`);
  for (const file of listed.output.split('\0').filter(Boolean)) {
    const source = path.join(ROOT, file);
    if (!existsSync(source)) continue; // deleted in the working tree
    mkdirSync(path.dirname(path.join(target, file)), { recursive: true });
    copyFileSync(source, path.join(target, file));
  }
  await git('init', '-q');
  await git('config', 'user.email', 'stack-test@localhost');
  await git('config', 'user.name', 'stack test');
}

/** docker-compose.production.yml on the host network, on these ports, with the stand-in images. */
function composeFileForThisMachine(): string {
  const file = parse(readFileSync(path.join(ROOT, 'docker-compose.production.yml'), 'utf8'));
  file.name = project;
  const { api, worker, postgres, redis } = file.services;
  for (const service of [api, worker, postgres, redis]) {
    service.network_mode = 'host';
    delete service.ports;
  }
  const swapPort = (test: string[], from: number, to: number) =>
    test.map((part) => part.replaceAll(`127.0.0.1:${from}/`, `127.0.0.1:${to}/`));
  api.environment.PORT = String(ports.api);
  api.healthcheck.test = swapPort(api.healthcheck.test, 3000, ports.api);
  worker.environment.WORKER_PORT = String(ports.worker);
  worker.healthcheck.test = swapPort(worker.healthcheck.test, 3001, ports.worker);
  postgres.image = STANDIN_POSTGRES;
  delete postgres.container_name; // one fixed name would keep two stacks from running side by side
  postgres.environment.PGPORT = String(ports.postgres);
  postgres.environment.POSTGRES_LISTEN_ADDRESSES = '127.0.0.1';
  redis.image = STANDIN_REDIS;
  redis.command = [...redis.command, '--port', String(ports.redis), '--bind', '127.0.0.1'];
  redis.healthcheck.test = ['CMD', 'redis-cli', '-p', String(ports.redis), 'ping'];
  // YAML 1.1, as docker-compose 1.29 reads it: "no" stays a string.
  return stringify(file, { version: '1.1' });
}

/** .env.production from the example, every secret filled in, pointing at this stack's ports. */
function envFileForThisMachine(postgresPassword: string): string {
  const values: Record<string, string> = {
    POSTGRES_PASSWORD: postgresPassword,
    HOST: '127.0.0.1',
    PORT: String(ports.api),
    WORKER_PORT: String(ports.worker),
    API_BASE_URL: `http://127.0.0.1:${ports.api}`,
    DATABASE_URL: `postgres://loyalty:${postgresPassword}@127.0.0.1:${ports.postgres}/loyalty`,
    REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
    METRICS_TOKEN: secrets.metrics,
    ADMIN_API_TOKEN: secrets.admin,
    APP_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
  };
  let env = readFileSync(path.join(ROOT, '.env.production.example'), 'utf8');
  for (const [key, value] of Object.entries(values)) {
    const line = new RegExp(`^${key}=.*$`, 'm');
    expect(env, `${key} in .env.production.example`).toMatch(line);
    env = env.replace(line, `${key}=${value}`);
  }
  return env;
}

/** Removes the stacks of earlier runs whose copy is gone (their containers would restart with dockerd). */
async function removeStaleStacks(): Promise<void> {
  const listed = await run(DOCKER, [
    'ps',
    '-a',
    '--filter',
    'label=com.docker.compose.project',
    '--format',
    '{{.ID}} {{.Label "com.docker.compose.project"}} {{.Label "com.docker.compose.project.working_dir"}}',
  ]);
  for (const line of listed.output.trim().split('\n').filter(Boolean)) {
    const [id = '', name = '', dir = ''] = line.split(' ');
    if (name.startsWith('loyaltystack') && !existsSync(dir)) {
      await run(DOCKER, ['rm', '-f', '-v', id]);
      await run(DOCKER, ['volume', 'rm', `${name}_postgres-data`]);
    }
  }
}

describe.skipIf(SKIP)('the production stack on a real Docker engine', () => {
  beforeAll(async () => {
    const started = Date.now();
    const prepared = await run('bash', [path.join(ROOT, 'test/docker/prepare.sh')]);
    expect(prepared.code, prepared.output).toBe(0);
    console.log(`base and stand-in images ready in ${Math.round((Date.now() - started) / 1000)}s`);
    await removeStaleStacks();

    work = mkdtempSync(path.join(tmpdir(), 'loyalty-stack-'));
    repo = path.join(work, 'repo');
    mkdirSync(repo);
    project = `loyaltystack${randomBytes(4).toString('hex')}`;
    ports = {
      api: await findFreePort(),
      worker: await findFreePort(),
      postgres: await findFreePort(),
      redis: await findFreePort(),
    };
    await copyWorkingTree(repo);
    writeFileSync(path.join(repo, 'docker-compose.production.yml'), composeFileForThisMachine());
    writeFileSync(path.join(repo, '.env.production'), envFileForThisMachine(randomBytes(12).toString('hex')));
    await commitRelease('release 1');

    // The database and Redis run before the first release, as on a server.
    const up = await compose('up', '-d', 'postgres', 'redis');
    expect(up.code, up.output).toBe(0);
    const deadline = Date.now() + 2 * MINUTE;
    let ready: ProcessResult = { code: null, output: '' };
    while (Date.now() < deadline) {
      ready = await compose('exec', '-T', 'postgres', 'pg_isready', '-U', 'loyalty', '-d', 'loyalty');
      if (ready.code === 0) break;
      await setTimeout(1_000);
    }
    // A container that never gets ready says why in its own log (a port taken, a crash on start).
    const log = ready.code === 0 ? '' : (await compose('logs', '--no-color', '--tail=40', 'postgres')).output;
    expect(ready.code, `postgres did not become ready: ${ready.output}\n${log}`).toBe(0);
  }, 45 * MINUTE);

  afterAll(async () => {
    if (!repo || !existsSync(repo)) return;
    const down = await compose('down', '-v', '--remove-orphans', '-t', '5');
    if (down.code !== 0) console.warn(`compose down failed: ${down.output}`);
    // The images of this run, and `latest` when deploy.sh pointed it at one of them.
    const ids = async (ref: string) =>
      (await run(DOCKER, ['image', 'inspect', '--format', '{{.Id}}', ref])).output.trim();
    const ours = await Promise.all(releases.map((tag) => ids(`loyalty-platform:${tag}`)));
    if (ours.includes(await ids('loyalty-platform:latest')))
      await run(DOCKER, ['rmi', 'loyalty-platform:latest']);
    for (const tag of releases) await run(DOCKER, ['rmi', `loyalty-platform:${tag}`]);
    rmSync(work, { recursive: true, force: true });
  }, 5 * MINUTE);

  it(
    'deploy: builds the image, migrates in it, starts api and worker from it, smoke-checked',
    async () => {
      const [release = ''] = releases;
      const started = Date.now();
      const result = await deploy('deploy');
      console.log(`first deploy (image build included) took ${Math.round((Date.now() - started) / 1000)}s`);
      expect(result.code, result.output).toBe(0);
      expect(result.output).toContain(`Deployed loyalty-platform:${release}`);
      expect(history().at(-1)?.slice(1, 4)).toEqual([release, release, 'deployed']);

      await expectStackOn(release, started);
      const ready = await getJson('/ready');
      expect(ready).toEqual({ status: 200, body: { status: 'ok', checks: { postgres: 'ok', redis: 'ok' } } });
      // The release baked into the image: package.json's version and the commit deploy.sh built.
      const { version } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8'));
      expect((await getJson('/health')).body).toMatchObject({ status: 'ok', version, commit: release });
      const label = await run(DOCKER, [
        'image',
        'inspect',
        '--format',
        '{{index .Config.Labels "org.opencontainers.image.revision"}}',
        `loyalty-platform:${release}`,
      ]);
      expect(label.output.trim()).toBe(release);

      // The worker's own /live, on its port (its heartbeats were seen above).
      const live = await fetch(`http://127.0.0.1:${ports.worker}/live`, {
        signal: AbortSignal.timeout(10_000),
      });
      expect(live.status).toBe(200);
    },
    40 * MINUTE,
  );

  it(
    'db:migrate, db:status and cli demo:seed run inside the image; the seeded merchant trades through it',
    async () => {
      const migrate = await compose(
        'run',
        '--rm',
        '--no-deps',
        '-T',
        'api',
        'npm',
        'run',
        '-s',
        'cli',
        '--',
        'db:migrate',
        '--json',
      );
      expect(migrate.code, migrate.output).toBe(0);
      expect(JSON.parse(migrate.output.trim().split('\n').at(-1) ?? '')).toEqual({ applied: [] });

      const status = await compose('exec', '-T', 'api', 'npm', 'run', '-s', 'db:status', '--', '--json');
      expect(status.code, status.output).toBe(0);
      const { migrations, pending } = JSON.parse(status.output.trim().split('\n').at(-1) ?? '');
      const files = readdirSync(path.join(ROOT, 'src/db/migrations')).filter((f) => /^\d{4}_.*\.ts$/.test(f));
      expect(pending).toEqual([]);
      expect(migrations.map((m: { name: string }) => m.name)).toEqual(
        files.map((f) => f.replace(/\.ts$/, '')),
      );
      expect(migrations.every((m: { appliedAt: string | null }) => m.appliedAt !== null)).toBe(true);

      const seed = await compose('exec', '-T', 'api', 'npm', 'run', '-s', 'cli', '--', 'demo:seed', '--json');
      expect(seed.code, seed.output).toBe(0);
      const credentials = JSON.parse(seed.output.trim().split('\n').at(-1) ?? '') as Record<string, string>;
      expect(credentials.INTEGRATION_API_KEY).toBeTruthy();

      // The POS path against the containers: code, resolve, quote, a purchase and its refund.
      const smoke = await run('scripts/smoke-integrations.sh', [], {
        cwd: repo,
        env: {
          ...credentials,
          BASE_URL: `http://127.0.0.1:${ports.api}`,
          SMOKE_ALLOW_MUTATIONS: '1',
          SMOKE_MAX_MS_DEFAULT: '15000',
        },
      });
      expect(smoke.code, smoke.output).toBe(0);

      const state = await deploy('status');
      expect(state.code, state.output).toBe(0);
      expect(state.output).toContain(`current:  loyalty-platform:${releases[0]}`);
    },
    10 * MINUTE,
  );

  it(
    'a release whose API cannot start is rolled back by itself to the running one',
    async () => {
      const [good = ''] = releases;
      // The new release's server throws at start-up; its CLI (migrations) still works.
      const server = path.join(repo, 'src/server.ts');
      writeFileSync(server, `throw new Error('this release cannot start');\n${readFileSync(server, 'utf8')}`);
      const bad = await commitRelease('release 2: the API cannot start');

      const started = Date.now();
      const result = await deploy('deploy', { DEPLOY_WAIT_SECONDS: '30' });
      console.log(`failing deploy and its rollback took ${Math.round((Date.now() - started) / 1000)}s`);
      expect(result.code, result.output).toBe(1);
      expect(result.output).toContain(`ROLLING BACK AUTOMATICALLY TO ${good}`);
      expect(result.output).toContain(
        `ROLLED BACK AUTOMATICALLY: api and worker run loyalty-platform:${good} again`,
      );
      expect(
        history()
          .slice(-2)
          .map((line) => line.slice(1, 4)),
      ).toEqual([
        [bad, bad, 'failed'],
        [good, good, 'auto_rollback'],
      ]);
      await expectStackOn(good, started);
    },
    30 * MINUTE,
  );

  it(
    'rollback: after a good release, goes back to the one before it',
    async () => {
      const [first = '', bad] = releases;
      const server = path.join(repo, 'src/server.ts');
      writeFileSync(
        server,
        readFileSync(server, 'utf8').replace("throw new Error('this release cannot start');\n", ''),
      );
      const second = await commitRelease('release 3: the fix');
      expect(second).not.toBe(bad);

      const deployed = await deploy('deploy');
      expect(deployed.code, deployed.output).toBe(0);
      expect(await container('api')).toEqual({ image: `loyalty-platform:${second}`, running: true });

      const started = Date.now();
      const result = await deploy('rollback');
      expect(result.code, result.output).toBe(0);
      expect(result.output).toContain(`Rolled back: api and worker run loyalty-platform:${first}`);
      expect(history().at(-1)?.slice(1, 4)).toEqual([first, first, 'rollback']);
      await expectStackOn(first, started);
    },
    30 * MINUTE,
  );
});
