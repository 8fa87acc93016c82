import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from './config.js';

const HEX_KEY = 'ab'.repeat(32);
const BASE64_KEY = Buffer.alloc(32, 7).toString('base64');
// Strong shared secrets as `openssl rand -hex 32` and `openssl rand -base64 32` print them.
const STRONG = {
  METRICS_TOKEN: randomBytes(32).toString('hex'),
  JWT_SECRET: randomBytes(32).toString('base64'),
  ADMIN_API_TOKEN: randomBytes(24).toString('hex'),
};

/** The problems of an environment loadConfig refuses (fails the test when it accepts it). */
function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  return expect.fail(`loadConfig accepted ${JSON.stringify(env)}`);
}

/** The variables named in problems (each problem starts with "NAME: "). */
function namesIn(problems: string[]): string[] {
  return problems.map((p) => p.slice(0, p.indexOf(':'))).sort();
}

describe('loadConfig', () => {
  it('starts from defaults on an empty environment', () => {
    const { config, warnings } = loadConfig({});
    expect(config).toMatchObject({
      NODE_ENV: 'development',
      PORT: 3000,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      WORKERS_ENABLED: false,
      MAINTENANCE_MODE: false,
      READ_ONLY_MODE: false,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: false,
      DB_SLOW_QUERY_MS: 0,
      ALERT_HTTP_SLOW_THRESHOLD_MS: 1000,
      TELEGRAM_API_BASE_URL: 'https://api.telegram.org',
      OUTBOX_RETRY_SCHEDULE: [5, 300, 1800, 7200, 18000, 36000, 36000],
    });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.METRICS_TOKEN).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it('accepts every variable the runbook names and lists each in CONFIG_VARIABLES', () => {
    const env = {
      DATABASE_URL: 'postgres://loyalty:secret@db:5432/loyalty',
      REDIS_URL: 'redis://redis:6379/0',
      METRICS_TOKEN: 'scrape-me',
      WORKERS_ENABLED: '1',
      MAINTENANCE_MODE: 'true',
      READ_ONLY_MODE: '0',
      API_BASE_URL: 'https://loyalty.example.com',
      ALERT_TELEGRAM_BOT_TOKEN: '123:alert',
      ALERT_TELEGRAM_CHAT_ID: '-100200300',
      ALERT_HTTP_5XX_PER_MIN: '5',
      ALERT_HTTP_SLOW_PER_MIN: '40',
      ALERT_HTTP_SLOW_THRESHOLD_MS: '1500',
      ALERT_OUTBOX_DEAD_DELTA: '3',
      ALERTS_5XX_SAMPLE_RATE: '0.25',
      TELEGRAM_NOTIFY_BOT_TOKEN: '456:notify',
      TELEGRAM_NOTIFY_WEBHOOK_SECRET: 'hook-secret',
      DB_SLOW_QUERY_MS: '250',
    };
    const { config, warnings } = loadConfig(env);
    expect(config).toMatchObject({
      DATABASE_URL: env.DATABASE_URL,
      REDIS_URL: env.REDIS_URL,
      METRICS_TOKEN: 'scrape-me',
      WORKERS_ENABLED: true,
      MAINTENANCE_MODE: true,
      READ_ONLY_MODE: false,
      API_BASE_URL: 'https://loyalty.example.com',
      ALERT_TELEGRAM_BOT_TOKEN: '123:alert',
      ALERT_TELEGRAM_CHAT_ID: '-100200300',
      ALERT_HTTP_5XX_PER_MIN: 5,
      ALERT_HTTP_SLOW_PER_MIN: 40,
      ALERT_HTTP_SLOW_THRESHOLD_MS: 1500,
      ALERT_OUTBOX_DEAD_DELTA: 3,
      ALERTS_5XX_SAMPLE_RATE: 0.25,
      TELEGRAM_NOTIFY_BOT_TOKEN: '456:notify',
      TELEGRAM_NOTIFY_WEBHOOK_SECRET: 'hook-secret',
      DB_SLOW_QUERY_MS: 250,
    });
    expect(warnings).toEqual([]);
    expect(CONFIG_VARIABLES).toEqual(expect.arrayContaining(Object.keys(env)));
    expect(CONFIG_VARIABLES).toEqual(
      expect.arrayContaining([
        'PORT',
        'HOST',
        'LOG_LEVEL',
        'TELEGRAM_API_BASE_URL',
        'OUTBOX_RETRY_SCHEDULE',
        'WEBHOOK_ALLOW_PRIVATE_NETWORKS',
        'APP_ENCRYPTION_KEY',
      ]),
    );
  });

  it('lists every bad variable at once, not just the first', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      WORKERS_ENABLED: 'maybe',
      API_BASE_URL: 'not a url',
      ALERT_HTTP_5XX_PER_MIN: '-1',
      ALERTS_5XX_SAMPLE_RATE: '2',
      OUTBOX_RETRY_SCHEDULE: '5,soon',
    });
    expect(namesIn(problems)).toEqual(
      [
        'ALERTS_5XX_SAMPLE_RATE',
        'ALERT_HTTP_5XX_PER_MIN',
        'API_BASE_URL',
        'LOG_LEVEL',
        'OUTBOX_RETRY_SCHEDULE',
        'PORT',
        'WORKERS_ENABLED',
      ].sort(),
    );
    for (const problem of problems) expect(problem).toMatch(/^[A-Z0-9_]+: \S/);
    // The message an operator reads lists them too, one per line.
    expect(() => loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud' })).toThrowError(
      /^ {2}- PORT: .*\n {2}- LOG_LEVEL: /m,
    );
  });

  it('lists a bad key and missing production variables together with the other bad variables', () => {
    // An operator fixing the environment should see every problem in one run, whatever its kind.
    const problems = problemsOf({ NODE_ENV: 'production', PORT: 'eighty', APP_ENCRYPTION_KEY: 'too-short' });
    expect(namesIn(problems)).toEqual(['APP_ENCRYPTION_KEY', 'DATABASE_URL', 'METRICS_TOKEN', 'PORT']);
  });

  it('reads PRISMA_SLOW_QUERY_MS as DB_SLOW_QUERY_MS, with a warning to rename it', () => {
    const { config, warnings } = loadConfig({ PRISMA_SLOW_QUERY_MS: '500' });
    expect(config.DB_SLOW_QUERY_MS).toBe(500);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/PRISMA_SLOW_QUERY_MS/);
    expect(warnings[0]).toMatch(/DB_SLOW_QUERY_MS/);
    expect(config).not.toHaveProperty('PRISMA_SLOW_QUERY_MS');
  });

  it('prefers DB_SLOW_QUERY_MS over the old name when both are set', () => {
    const { config, warnings } = loadConfig({ PRISMA_SLOW_QUERY_MS: '500', DB_SLOW_QUERY_MS: '200' });
    expect(config.DB_SLOW_QUERY_MS).toBe(200);
    expect(warnings).toHaveLength(1);
  });

  it('refuses production without DATABASE_URL, APP_ENCRYPTION_KEY and METRICS_TOKEN, naming each', () => {
    expect(namesIn(problemsOf({ NODE_ENV: 'production' }))).toEqual([
      'APP_ENCRYPTION_KEY',
      'DATABASE_URL',
      'METRICS_TOKEN',
    ]);
    expect(
      namesIn(
        problemsOf({
          NODE_ENV: 'production',
          APP_ENCRYPTION_KEY: HEX_KEY,
          METRICS_TOKEN: STRONG.METRICS_TOKEN,
        }),
      ),
    ).toEqual(['DATABASE_URL']);
    expect(
      namesIn(
        problemsOf({
          NODE_ENV: 'production',
          DATABASE_URL: 'postgres://db/loyalty',
          APP_ENCRYPTION_KEY: ' ',
          METRICS_TOKEN: STRONG.METRICS_TOKEN,
        }),
      ),
    ).toEqual(['APP_ENCRYPTION_KEY']);
  });

  it('refuses short or predictable JWT_SECRET, ADMIN_API_TOKEN and METRICS_TOKEN in production, listing each', () => {
    const base = {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://db/loyalty',
      APP_ENCRYPTION_KEY: HEX_KEY,
    };
    const weak = [
      'change-me',
      'deploy-metrics-token',
      'x'.repeat(40),
      'change-me-please-change-me-please',
      'abcdefghijklmnopqrstuvwxyz0123456789',
      'passwordpasswordpasswordpassword!',
    ];
    for (const value of weak) {
      const problems = problemsOf({
        ...base,
        JWT_SECRET: value,
        ADMIN_API_TOKEN: value,
        METRICS_TOKEN: value,
      });
      expect(namesIn(problems), value).toEqual(['ADMIN_API_TOKEN', 'JWT_SECRET', 'METRICS_TOKEN']);
      // The reason is given, the secret itself is never echoed.
      for (const p of problems) {
        expect(p).toMatch(/too short|low entropy/);
        expect(p).not.toContain(value);
      }
    }
    // Random values as operators generate them pass, whatever their alphabet.
    for (let i = 0; i < 200; i += 1) {
      const env = {
        ...base,
        JWT_SECRET: randomBytes(16).toString('hex'),
        ADMIN_API_TOKEN: randomBytes(24).toString('base64'),
        METRICS_TOKEN: randomBytes(32).toString('base64url'),
      };
      expect(() => loadConfig(env), JSON.stringify(env)).not.toThrow();
    }
    // Outside production the same weak values are accepted (development, tests).
    expect(() =>
      loadConfig({ JWT_SECRET: 'dev', ADMIN_API_TOKEN: 'dev', METRICS_TOKEN: 'dev' }),
    ).not.toThrow();
  });

  it('accepts production with all of them, and does not seed demo data there unless asked', () => {
    const env = {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://db/loyalty',
      APP_ENCRYPTION_KEY: HEX_KEY,
      ...STRONG,
    };
    expect(loadConfig(env).config.SEED_DEMO).toBe(false);
    expect(loadConfig({ ...env, SEED_DEMO: '1' }).config.SEED_DEMO).toBe(true);
    expect(loadConfig({}).config.SEED_DEMO).toBe(true);
  });

  it('accepts APP_ENCRYPTION_KEY as 64 hex characters or base64 of 32 bytes, nothing else', () => {
    expect(loadConfig({ APP_ENCRYPTION_KEY: HEX_KEY }).config.APP_ENCRYPTION_KEY).toBe(HEX_KEY);
    expect(loadConfig({ APP_ENCRYPTION_KEY: BASE64_KEY }).config.APP_ENCRYPTION_KEY).toBe(BASE64_KEY);
    for (const bad of ['ab'.repeat(31), Buffer.alloc(16).toString('base64'), 'not a key at all']) {
      expect(namesIn(problemsOf({ APP_ENCRYPTION_KEY: bad })), bad).toEqual(['APP_ENCRYPTION_KEY']);
    }
  });

  it.each([
    'WORKERS_ENABLED',
    'MAINTENANCE_MODE',
    'READ_ONLY_MODE',
    'WEBHOOK_ALLOW_PRIVATE_NETWORKS',
  ] as const)('reads %s as a boolean from 1/0/true/false', (name) => {
    expect(loadConfig({ [name]: '1' }).config[name]).toBe(true);
    expect(loadConfig({ [name]: 'true' }).config[name]).toBe(true);
    expect(loadConfig({ [name]: '0' }).config[name]).toBe(false);
    expect(loadConfig({ [name]: 'false' }).config[name]).toBe(false);
    expect(loadConfig({}).config[name]).toBe(false);
    expect(namesIn(problemsOf({ [name]: 'maybe' }))).toEqual([name]);
  });

  it('parses OUTBOX_RETRY_SCHEDULE into numbers of seconds', () => {
    expect(loadConfig({ OUTBOX_RETRY_SCHEDULE: '1,2,3' }).config.OUTBOX_RETRY_SCHEDULE).toEqual([1, 2, 3]);
    expect(loadConfig({ OUTBOX_RETRY_SCHEDULE: ' 0, 10 ,60 ' }).config.OUTBOX_RETRY_SCHEDULE).toEqual([
      0, 10, 60,
    ]);
    expect(loadConfig({ OUTBOX_RETRY_SCHEDULE: '30' }).config.OUTBOX_RETRY_SCHEDULE).toEqual([30]);
    // A typo must not turn into a 0-second retry: empty items are refused like any other bad item.
    const accepted = ['soon', '5,-1', '5,,10', '5,10,', 'Infinity', '1.5e400'].filter((bad) => {
      try {
        loadConfig({ OUTBOX_RETRY_SCHEDULE: bad });
        return true;
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect(namesIn((error as ConfigError).problems)).toEqual(['OUTBOX_RETRY_SCHEDULE']);
        return false;
      }
    });
    expect(accepted).toEqual([]);
  });

  it('treats an empty variable as unset, as it does for strings and booleans', () => {
    // Compose files pass `VAR=${VAR:-}`: an empty value must mean "the default", never 0 or [0].
    const defaults = loadConfig({}).config;
    const names = [
      'PORT',
      'METRICS_TOKEN',
      'WORKERS_ENABLED',
      'DB_SLOW_QUERY_MS',
      'ALERT_HTTP_5XX_PER_MIN',
      'ALERT_HTTP_SLOW_THRESHOLD_MS',
      'ALERTS_5XX_SAMPLE_RATE',
      'OUTBOX_RETRY_SCHEDULE',
    ] as const;
    const differences: string[] = [];
    for (const name of names) {
      try {
        const value = loadConfig({ [name]: '' }).config[name];
        if (JSON.stringify(value) !== JSON.stringify(defaults[name])) {
          differences.push(
            `${name}='' gives ${JSON.stringify(value)}, default ${JSON.stringify(defaults[name])}`,
          );
        }
      } catch (error) {
        differences.push(`${name}='' is refused: ${(error as Error).message.replaceAll('\n', ' ')}`);
      }
    }
    expect(differences).toEqual([]);
  });
});
