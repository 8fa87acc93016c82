import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';

// Static checks of the operations kit: shellcheck, the env example against the config module, the
// compose file, the Dockerfile and the runbook's references (scripts, variables, npm scripts, routes).

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

const SCRIPTS = readdirSync(path.join(ROOT, 'scripts'))
  .filter((f) => f.endsWith('.sh'))
  .map((f) => `scripts/${f}`);
const LIBS = readdirSync(path.join(ROOT, 'scripts/lib'))
  .filter((f) => f.endsWith('.sh'))
  .map((f) => `scripts/lib/${f}`);

/** Variables the compose file reads from .env.production that the application itself never reads. */
const COMPOSE_ONLY_VARIABLES = ['POSTGRES_PASSWORD'];

function envExampleKeys(): string[] {
  return read('.env.production.example')
    .split('\n')
    .map((line) => /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(line)?.[1])
    .filter((key): key is string => key !== undefined);
}

// What an operator puts in place of change-me: `openssl rand -hex 24`.
const FILLED_SECRET = randomBytes(24).toString('hex');

/** The example as an environment, with every placeholder filled in. */
function filledExample(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of read('.env.production.example').split('\n')) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match?.[1]) env[match[1]] = (match[2] ?? '').replaceAll('change-me', FILLED_SECRET);
  }
  env.APP_ENCRYPTION_KEY = 'ab'.repeat(32);
  return env;
}

/** The compose file's services, each as the text of its block (enough for these checks). */
function composeServices(): Map<string, string> {
  const lines = read('docker-compose.production.yml').split('\n');
  const services = new Map<string, string>();
  let name: string | null = null;
  let block: string[] = [];
  for (const line of lines.slice(lines.indexOf('services:') + 1)) {
    if (/^\S/.test(line)) break;
    const match = /^ {2}([a-z][a-z0-9_-]*):\s*$/.exec(line);
    if (match?.[1]) {
      if (name) services.set(name, block.join('\n'));
      name = match[1];
      block = [];
    } else {
      block.push(line);
    }
  }
  if (name) services.set(name, block.join('\n'));
  return services;
}

const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;

describe('shell scripts', () => {
  it.skipIf(!hasShellcheck)('are shellcheck clean (skipped when shellcheck is not installed)', () => {
    const result = spawnSync('shellcheck', ['-x', ...SCRIPTS, ...LIBS, 'test/fakes/docker'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('exist by the runbook names, are executable and strict', () => {
    const expected = ['backup-verify', 'backup', 'deploy', 'restore', 'smoke-check', 'smoke-integrations'];
    for (const name of expected) expect(SCRIPTS).toContain(`scripts/${name}.sh`);
    for (const file of [...SCRIPTS, 'test/fakes/docker']) {
      expect(() => accessSync(path.join(ROOT, file), constants.X_OK), `${file} is executable`).not.toThrow();
      expect(read(file).startsWith('#!/usr/bin/env bash\n'), file).toBe(true);
      expect(read(file), file).toContain('set -euo pipefail');
    }
  });

  it('print their usage with --help', () => {
    for (const file of SCRIPTS) {
      const result = spawnSync(path.join(ROOT, file), ['--help'], { cwd: ROOT, encoding: 'utf8' });
      expect(result.stdout + result.stderr, file).toMatch(/\w/);
      expect([0, 2], file).toContain(result.status);
    }
  });
});

describe('.env.production.example', () => {
  it('documents exactly the variables of src/config.ts (plus the compose-only ones)', () => {
    const keys = envExampleKeys();
    expect(new Set(keys).size, 'no variable twice').toBe(keys.length);
    const appKeys = keys.filter((k) => !COMPOSE_ONLY_VARIABLES.includes(k));
    expect([...appKeys].sort()).toEqual([...CONFIG_VARIABLES].sort());
    for (const key of COMPOSE_ONLY_VARIABLES) {
      expect(CONFIG_VARIABLES).not.toContain(key);
      expect(read('docker-compose.production.yml'), `${key} is used by the compose file`).toContain(
        `\${${key}`,
      );
    }
  });

  it('has an English comment above every variable', () => {
    const lines = read('.env.production.example').split('\n');
    lines.forEach((line, i) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(line)) return;
      let j = i - 1;
      while (j >= 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(lines[j] ?? '')) j -= 1;
      expect(lines[j] ?? '', `comment above ${line}`).toMatch(/^# \S/);
    });
    expect(read('.env.production.example')).not.toMatch(/[А-Яа-яЁё]/);
  });

  it('points DATABASE_URL at the compose postgres as loyalty and passes the config check once filled in', () => {
    const env = filledExample();
    expect(env.DATABASE_URL).toMatch(/^postgres:\/\/loyalty:[^@]+@postgres:5432\/loyalty$/);
    expect(env.NODE_ENV).toBe('production');
    const { config, warnings } = loadConfig(env);
    expect(warnings).toEqual([]);
    expect(config.SEED_DEMO).toBe(false);
    // As committed (no APP_ENCRYPTION_KEY yet) the production check refuses it.
    expect(() => loadConfig({ ...env, APP_ENCRYPTION_KEY: '' })).toThrow(/APP_ENCRYPTION_KEY/);
  });
});

describe('docker-compose.production.yml', () => {
  const compose = read('docker-compose.production.yml');
  const services = composeServices();

  it('has api, worker, postgres and redis with health checks, restarts, limits and log rotation', () => {
    expect([...services.keys()].sort()).toEqual(['api', 'postgres', 'redis', 'worker']);
    for (const [name, block] of services) {
      expect(block, name).toMatch(/^ {4}healthcheck:/m);
      expect(block, name).toMatch(/^ {4}restart: unless-stopped$/m);
      expect(block, name).toMatch(/limits:\n\s+cpus: "[\d.]+"\n\s+memory: \d+[MG]/);
      expect(block, name).toMatch(/^ {4}logging: \*logging$/m);
    }
    expect(compose).toMatch(/driver: json-file\n\s+options:\n\s+max-size: "\d+m"\n\s+max-file: "\d+"/);
  });

  it('runs api and worker from one image tagged by IMAGE_TAG with the production env file', () => {
    for (const name of ['api', 'worker']) {
      const block = services.get(name) ?? '';
      expect(block, name).toMatch(/image: loyalty-platform:\$\{IMAGE_TAG:-latest\}\n/);
      expect(block, name).toMatch(/^ {4}env_file: \.env\.production$/m);
      expect(block, name).toMatch(/postgres:\n\s+condition: service_healthy/);
    }
    expect(services.get('api')).toContain('command: ["node", "dist/server.js"]');
    expect(services.get('api')).toContain('/live');
    expect(services.get('worker')).toContain('command: ["node", "dist/worker.js"]');
    expect(services.get('worker')).toContain('WORKERS_ENABLED: "1"');
    expect(services.get('api')).toContain('WORKERS_ENABLED: "0"');
  });

  it('names the postgres container postgres, user loyalty, on a named volume', () => {
    const postgres = services.get('postgres') ?? '';
    expect(postgres).toContain('image: postgres:16');
    expect(postgres).toContain('container_name: postgres');
    expect(postgres).toContain('POSTGRES_USER: loyalty');
    expect(postgres).toContain('pg_isready -U loyalty');
    expect(postgres).toMatch(/- postgres-data:\/var\/lib\/postgresql\/data/);
    expect(compose).toMatch(/^volumes:\n {2}postgres-data:/m);
    expect(services.get('redis')).toContain('redis-cli');
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('is multi-stage: npm ci, npm run build, production dependencies, non-root, health check', () => {
    expect(dockerfile).toMatch(/^FROM \S+ AS deps$/m);
    expect(dockerfile).toMatch(/^FROM deps AS build$/m);
    expect(dockerfile).toMatch(/^FROM \S+ AS runtime$/m);
    expect(dockerfile).toMatch(/RUN .*npm ci$/m);
    expect(dockerfile).toMatch(/RUN npm run build/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/^USER (?!root)\w+$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK [\s\S]*\/live/m);
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/server\.js"\]$/m);
    expect(dockerfile).toContain('COPY --from=build /app/dist ./dist');
    expect(dockerfile).toContain('COPY --from=build /app/web/dist ./web/dist');
  });

  it('contains what `npm run db:migrate` runs in the container', () => {
    const scripts = JSON.parse(read('package.json')).scripts as Record<string, string>;
    for (const name of ['db:migrate', 'db:status', 'cli']) {
      const script = scripts[name] ?? '';
      const entry = /(src|dist)\/\S+\.(ts|js)/.exec(script)?.[1];
      expect(entry, `${name}: ${script}`).toBeDefined();
      expect(dockerfile, `${name} needs ${entry}/ in the image`).toMatch(
        new RegExp(`^COPY .*\\./${entry}$`, 'm'),
      );
      if (script.startsWith('tsx ')) {
        expect(JSON.parse(read('package.json')).dependencies).toHaveProperty('tsx');
      }
    }
  });

  it('keeps secrets, data and backups out of the build context', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['.git', '.env', '.env.*', 'backups', 'node_modules', '.data', '.releases']) {
      expect(ignored).toContain(entry);
    }
  });
});

describe('docs/runbook.md', () => {
  const runbook = read('docs/runbook.md');
  const seedSections = [
    'Быстрый чек (если «что-то не так»)',
    'Наблюдаемость и алерты',
    'Интеграционный smoke',
    'Симптом: API не отвечает / 5xx',
    'Симптом: растут медленные запросы',
    'Симптом: БД недоступна',
    'DB аудит и индексы',
    'Симптом: Redis недоступен',
    'Симптом: воркеры не работают / outbox растёт',
    'Симптом: растёт outbox dead',
    'Симптом: не приходят уведомления в Telegram',
    'Симптом: ошибки внешних интеграций (Telegram/webhooks)',
    'Миграции и схема',
    'Бэкапы',
    'Режим обслуживания',
    'Релиз и откат',
  ];

  it('keeps every section of the seed runbook and adds outbox, switches and release history', () => {
    const headings = [...runbook.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    for (const section of seedSections) expect(headings).toContain(section);
    expect(headings).toEqual(expect.arrayContaining(['История релизов', 'Переключатели во время работы']));
    expect(headings.some((h) => h?.startsWith('Outbox'))).toBe(true);
  });

  it('names only commands of this project', () => {
    const commands = runbook
      .split('\n')
      .filter((line) => !line.startsWith('|'))
      .join('\n');
    expect(commands).not.toMatch(/pnpm|prisma migrate|\brg\b/);
    for (const [, script] of runbook.matchAll(/scripts\/([a-z-]+\.sh)/g)) {
      expect(SCRIPTS, script).toContain(`scripts/${script}`);
    }
    const npmScripts = JSON.parse(read('package.json')).scripts as Record<string, string>;
    for (const [, name] of runbook.matchAll(/npm run (?:-s )?([a-z][\w:-]*)/g)) {
      expect(npmScripts, `npm run ${name}`).toHaveProperty(name ?? '');
    }
  });

  it('names only variables that exist (config, compose or scripts)', () => {
    const scriptText = [...SCRIPTS, ...LIBS].map(read).join('\n');
    const names = new Set(
      [...runbook.matchAll(/`([A-Z][A-Z0-9]+(?:_[A-Z0-9*]+)+)`/g)].map((m) => m[1] ?? ''),
    );
    expect(names.size).toBeGreaterThan(20);
    for (const name of names) {
      if (CONFIG_VARIABLES.includes(name) || COMPOSE_ONLY_VARIABLES.includes(name)) continue;
      // SMOKE_MAX_MS_<STEP> is read as "SMOKE_MAX_MS_$key" for each key of the thresholds table.
      const step = /^SMOKE_MAX_MS_([A-Z_]+)$/.exec(name)?.[1];
      const needle = step && step !== 'DEFAULT' ? `[${step}]=` : name.replace(/\*$/, '');
      expect(scriptText.includes(needle), `${name} is read by a script`).toBe(true);
    }
  });

  it('uses admin API routes that exist', () => {
    const routes = read('src/modules/admin/admin.routes.ts');
    const paths = new Set(
      [...runbook.matchAll(/(?:\$A|\/api\/v1\/admin)(\/[a-z/{}0-9<>-]*[a-z}])/g)].map((m) => m[1] ?? ''),
    );
    expect(paths.size).toBeGreaterThanOrEqual(6);
    for (const p of paths) {
      const route = p.replace(/\/(?:\d+|\{id\})(?=\/|$)/g, '/:id');
      expect(routes, `route ${route}`).toContain(`'${route}'`);
    }
  });
});
