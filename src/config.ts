import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { parseJobSchedules } from './jobs/schedules.js';

/**
 * The only module that reads process.env. Every variable the runbook names is here, with what it
 * does; `loadConfig` parses once and fails listing every bad variable, not just the first.
 */

const bool = (fallback: boolean) =>
  z
    .enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off', ''])
    .optional()
    .transform((v) => (v === undefined || v === '' ? fallback : ['1', 'true', 'yes', 'on'].includes(v)));

// An empty variable means "not set" (compose files often pass VAR= through), so it takes the default.
const emptyToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

const int = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(emptyToUndefined, z.coerce.number().int().min(min).max(max).default(fallback));

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const optionalUrl = optionalString.pipe(z.url().optional());

const EnvSchema = z.object({
  // --- process ---
  /** development | test | production. Production requires DATABASE_URL, APP_ENCRYPTION_KEY, METRICS_TOKEN. */
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  /** HTTP port of the API. */
  PORT: int(3000, 0, 65535),
  /** Interface the API listens on. */
  HOST: z.string().default('0.0.0.0'),
  /**
   * OpenTelemetry tracing: base URL of an OTLP/HTTP collector (spans go to <url>/v1/traces, JSON).
   * Unset: tracing is off and the SDK is not loaded. Traces follow a purchase from the request
   * through the ledger and the outbox to the webhook delivery (`traceparent` header).
   */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl,
  /** pino log level: fatal, error, warn, info, debug, trace, silent. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Public base URL of the API (Telegram webhooks are registered under it). */
  API_BASE_URL: optionalUrl,

  // --- release (baked into the image at build: BUILD_VARIABLES, not set in .env.production) ---
  /** Version /health reports; unset: package.json's. */
  APP_VERSION: optionalString,
  /** Git commit /health reports; unset: `git rev-parse --short HEAD` when run from a checkout. */
  GIT_COMMIT: optionalString,

  // --- database ---
  /** PostgreSQL connection string. Unset: `npm start` runs an embedded PostgreSQL in EMBEDDED_PG_DIR. */
  DATABASE_URL: optionalString,
  /**
   * Optional read replica (a hot standby) for the merchant portal's analytics: the dashboard and the
   * CSV export read from it, so long scans stay off the primary. Unset: they use DATABASE_URL.
   * Replication lag shows there as figures a few seconds old; nothing else reads from it.
   */
  DATABASE_READ_URL: optionalString,
  /**
   * Direct PostgreSQL connection (not through a transaction pooler) for what needs a session of its
   * own: the LISTEN connection and the scheduler's advisory locks. Set it when DATABASE_URL points at
   * PgBouncer in transaction mode; unset: DATABASE_URL.
   */
  DATABASE_DIRECT_URL: optionalString,
  /**
   * The POS hot path's statements (the customer reads and the commit call) go as named prepared
   * statements: each connection parses and plans them once instead of on every call
   * (docs/performance.md, "Named prepared statements"). On by default. Behind PgBouncer in
   * transaction mode it needs PgBouncer 1.21+ with max_prepared_statements set (the Kubernetes
   * component sets it); with an older pooler set DATABASE_PREPARED_STATEMENTS=0 (left on, the first
   * statement such a pooler makes fail fails, and the process goes on without names, with a warning).
   */
  DATABASE_PREPARED_STATEMENTS: bool(true),
  /** Connections in the API's pool (and in its read-replica pool when DATABASE_READ_URL is set). */
  DATABASE_POOL_MAX: int(20, 1, 500),
  /** Data directory of the embedded PostgreSQL (only used without DATABASE_URL). */
  EMBEDDED_PG_DIR: z.string().default('.data/postgres'),
  /** Port of the embedded PostgreSQL; 0 picks a free one. */
  EMBEDDED_PG_PORT: int(0, 0, 65535),
  /** Queries slower than this many ms are logged (SQL without values) and counted; 0 = off. */
  DB_SLOW_QUERY_MS: int(0),
  /** statement_timeout of the API's pool, ms: a runaway query is cancelled instead of holding a connection; 0 = off. */
  DB_STATEMENT_TIMEOUT_MS: int(5000, 0, 3_600_000),
  /**
   * Group commit of POS purchases: commits that arrive while GROUP_COMMIT_IN_FLIGHT transactions of
   * them are running wait for one to end and then run together, up to GROUP_COMMIT_MAX_BATCH in one
   * transaction and one round trip (one WAL flush). A commit that arrives with a slot free runs at
   * once, alone, so a quiet till waits for nothing. On by default (docs/performance.md: more
   * commits per second and less PostgreSQL CPU per commit under load); GROUP_COMMIT=0 turns it off.
   */
  GROUP_COMMIT: bool(true),
  /** Purchases per group-commit transaction at most. */
  GROUP_COMMIT_MAX_BATCH: int(16, 2, 256),
  /**
   * Group-commit transactions running at once per API process (each holds a pool connection). One:
   * under load the commits that arrive while it runs wait and go together, the largest batches and
   * the least work per commit (docs/performance.md, "One batch in flight"); a batch running longer
   * than GROUP_BATCH_SLOW_MS no longer holds the slot, so a lock wait does not stop the process.
   */
  GROUP_COMMIT_IN_FLIGHT: int(1, 1, 100),
  /**
   * Batched reads of the POS hot path: the customer lookups of resolves, quotes and commits that
   * arrive while GROUP_READS_IN_FLIGHT statements of them are running run together, up to 32 in one
   * statement (one round trip). Alone, a lookup runs at once. On by default (docs/performance.md,
   * "Batched reads"); GROUP_READS=0 turns it off.
   */
  GROUP_READS: bool(true),
  /**
   * Batched-read statements running at once per API process (each holds a pool connection). One,
   * like group commit: larger batches, more resolves per second and shorter commits at a steady
   * rate (docs/performance.md, "One batch in flight").
   */
  GROUP_READS_IN_FLIGHT: int(1, 1, 100),
  /**
   * A group commit or batched read running this long (ms) no longer counts against its IN_FLIGHT:
   * the requests waiting behind it start, up to 3 more batches of its kind while the running ones
   * stay slow (a lock wait, a cold page), so one stuck batch does not hold every request of the
   * process. 0: never more than IN_FLIGHT at once.
   */
  GROUP_BATCH_SLOW_MS: int(50, 0, 60_000),
  /**
   * idle_in_transaction_session_timeout of every pool connection (API, worker, CLI, replica), ms: a
   * session of ours left idle inside a transaction is ended by PostgreSQL instead of holding locks and
   * vacuum back; 0 = off.
   */
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: int(60_000, 0, 86_400_000),
  /** Old name of DB_SLOW_QUERY_MS (Prisma era); still read, with a warning. */
  PRISMA_SLOW_QUERY_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).optional()),

  // --- redis ---
  /** Redis connection string. Optional: without it rate limits are per process and caches are off. */
  REDIS_URL: optionalString,

  // --- processes and switches ---
  /** 1 runs the outbox worker, scheduler and alert monitor in this process. */
  WORKERS_ENABLED: bool(false),
  /** 1 answers 503 `maintenance` on every route but /health, /live, /ready, /metrics. */
  MAINTENANCE_MODE: bool(false),
  /** 1 lets only GET, HEAD and OPTIONS through; the rest get 503 `read_only`. */
  READ_ONLY_MODE: bool(false),
  /** Seed a demo merchant on an empty database at start-up (default on outside production). */
  SEED_DEMO: bool(true),

  // --- metrics and alerts ---
  /** When set, /metrics requires the header X-Metrics-Token with this value. Required in production. */
  METRICS_TOKEN: optionalString,
  /** Telegram bot token used to send operator alerts. */
  ALERT_TELEGRAM_BOT_TOKEN: optionalString,
  /** Telegram chat that receives operator alerts. */
  ALERT_TELEGRAM_CHAT_ID: optionalString,
  /** Alert when 5xx responses per minute exceed this. */
  ALERT_HTTP_5XX_PER_MIN: int(10),
  /** Alert when slow requests per minute exceed this. */
  ALERT_HTTP_SLOW_PER_MIN: int(30),
  /** A request slower than this many ms is "slow" (http_slow_requests_total). */
  ALERT_HTTP_SLOW_THRESHOLD_MS: int(1000, 1),
  /** Alert when loyalty_outbox_dead_total grows by more than this within the monitoring window. */
  ALERT_OUTBOX_DEAD_DELTA: int(10),
  /**
   * Each API process alerts on Telegram (ALERT_TELEGRAM_*) when PostgreSQL has been unreachable for
   * this many minutes (decimals allowed), and again when it is back.
   */
  ALERT_DB_DOWN_MINUTES: z.preprocess(emptyToUndefined, z.coerce.number().positive().max(1440).default(2)),
  /** Share (0..1) of 5xx responses reported as incidents with their context. */
  ALERTS_5XX_SAMPLE_RATE: z.preprocess(emptyToUndefined, z.coerce.number().min(0).max(1).default(0.1)),

  // --- telegram ---
  /** Token of the platform's notify bot (merchant staff notifications). */
  TELEGRAM_NOTIFY_BOT_TOKEN: optionalString,
  /** Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token to the notify bot's webhook. */
  TELEGRAM_NOTIFY_WEBHOOK_SECRET: optionalString,
  /** Base URL of the Telegram Bot API (a fake in tests, or a local Bot API server). */
  TELEGRAM_API_BASE_URL: z.url().default('https://api.telegram.org'),

  // --- outbox and webhooks ---
  /** Delays in seconds between delivery attempts; when used up the event is dead. */
  OUTBOX_RETRY_SCHEDULE: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('5,300,1800,7200,18000,36000,36000')
      .transform((s, ctx) => {
        const parts = s.split(',').map((p) => (p.trim() === '' ? Number.NaN : Number(p.trim())));
        if (parts.length === 0 || parts.some((n) => !Number.isFinite(n) || n < 0)) {
          ctx.addIssue({ code: 'custom', message: 'expected comma-separated non-negative seconds' });
          return z.NEVER;
        }
        return parts;
      }),
  ),
  /** Seconds a worker owns a claimed event; a crashed worker's claims are taken back after it. */
  OUTBOX_LEASE_SECONDS: int(60, 5, 3600),
  /** Events one worker claims per round. */
  OUTBOX_BATCH_SIZE: int(50, 1, 1000),
  /** Deliveries one worker runs at the same time. */
  OUTBOX_CONCURRENCY: int(16, 1, 256),
  /** Fallback polling interval of the worker (it is also woken by NOTIFY). */
  OUTBOX_POLL_INTERVAL_MS: int(1000, 50, 60_000),
  /** Delivered events (and their attempts) older than this many days are purged. */
  OUTBOX_RETENTION_DAYS: int(14, 1, 3650),
  /** Finished idempotency records older than this many days are purged. */
  IDEMPOTENCY_RETENTION_DAYS: int(7, 1, 365),
  /** Port of the worker's own /health and /metrics (the worker process only; 0 = off). */
  WORKER_PORT: int(3001, 0, 65535),
  /**
   * Overrides of the periodic jobs' cron patterns (UTC, seconds optional), `name=pattern;...`, e.g.
   * `alerts:monitor=5,35 * * * * *`. Unset: the defaults (src/jobs/schedules.ts). Each job runs once
   * per tick across all workers.
   */
  JOB_SCHEDULES: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('')
      .transform((text, ctx) => {
        const parsed = parseJobSchedules(text);
        if (Array.isArray(parsed)) {
          for (const message of parsed) ctx.addIssue({ code: 'custom', message });
          return z.NEVER;
        }
        return parsed;
      }),
  ),
  /** An alert that keeps firing is repeated at most once per this many minutes. */
  ALERT_COOLDOWN_MINUTES: int(30, 1, 1440),
  /**
   * Bearer token for the admin API (/api/v1/admin); unset: the admin API is off (`npm start` makes one up).
   * In production at least 32 random characters.
   */
  ADMIN_API_TOKEN: optionalString,
  /**
   * Deadline of one webhook delivery attempt, ms: connecting, the answer's headers and the first bytes
   * of its body together. Slower endpoints count as timeouts and are retried.
   */
  WEBHOOK_TIMEOUT_MS: int(10_000, 100, 120_000),
  /** 1 allows webhook targets on private, loopback and link-local addresses (development, tests). */
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: bool(false),
  /**
   * Secret that signs portal and admin access tokens (JWT); derived from APP_ENCRYPTION_KEY when unset.
   * In production at least 32 random characters.
   */
  JWT_SECRET: optionalString,
  /** Lifetime of a portal access token, seconds. */
  PORTAL_ACCESS_TOKEN_TTL_SECONDS: int(900, 60, 86_400),
  /** Lifetime of a portal refresh token, days (each use rotates it). */
  PORTAL_REFRESH_TOKEN_TTL_DAYS: int(30, 1, 365),
  /** Failed logins per account from one client address within LOGIN_WINDOW_SECONDS before 429. */
  LOGIN_MAX_FAILURES_PER_ACCOUNT: int(5, 1),
  /** Failed logins per client address within LOGIN_WINDOW_SECONDS before 429 (portal and admin apart). */
  LOGIN_MAX_FAILURES_PER_IP: int(20, 1),
  /** Window of the login limits, seconds. */
  LOGIN_WINDOW_SECONDS: int(900, 1),
  /**
   * Key for secrets at rest (32 bytes, hex or base64). Required in production; elsewhere, when unset,
   * each installation generates its own (src/modules/keys/keys.service.ts).
   */
  APP_ENCRYPTION_KEY: optionalString,

  // --- customer codes and integration API ---
  /** Lifetime of a customer's one-time code in seconds. */
  CUSTOMER_CODE_TTL_SECONDS: int(300, 10, 86_400),
  /** Customers are reminded this many days before their points expire (once per lot). */
  POINTS_EXPIRY_REMINDER_DAYS: int(7, 1, 365),
  /** Failed code resolves allowed per API key within CODE_RESOLVE_WINDOW_SECONDS before 429. */
  CODE_RESOLVE_MAX_FAILURES: int(10, 1),
  /** Window of the failed-resolve limit, seconds. */
  CODE_RESOLVE_WINDOW_SECONDS: int(60, 1),
  /** How long an API key lookup is cached in process (revocations reach every replica at once via NOTIFY). */
  API_KEY_CACHE_SECONDS: int(60, 0),
  /** Largest request body accepted, bytes. */
  BODY_LIMIT_BYTES: int(65_536, 1024, 10_485_760),

  // --- network edge: reverse proxy and login slow-down ---
  /**
   * Which reverse proxies to believe about the client (X-Forwarded-For, X-Forwarded-Proto), as
   * Fastify's trustProxy: unset or `false` = none (the socket's address is the client), `true` =
   * any, a number = that many hops, or comma-separated addresses/CIDRs (`loopback`, `uniquelocal`,
   * `linklocal` also work). Per-address limits count the real client; HSTS is sent over https.
   */
  TRUST_PROXY: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .optional()
      .transform((value, ctx) => {
        const parsed = parseTrustProxy(value);
        if (parsed === null) {
          ctx.addIssue({
            code: 'custom',
            message: 'expected true, false, a hop count or comma-separated proxy addresses/CIDRs',
          });
          return z.NEVER;
        }
        return parsed;
      }),
  ),
  /** Failed logins of one account from all addresses within LOGIN_WINDOW_SECONDS after which every attempt on it is delayed (never refused). */
  LOGIN_ACCOUNT_SLOWDOWN_AFTER: int(20, 1),
  /** The delay, in ms, of each login attempt on an account over LOGIN_ACCOUNT_SLOWDOWN_AFTER. */
  LOGIN_ACCOUNT_SLOWDOWN_MS: int(2000, 0, 60_000),
});

const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** TRUST_PROXY as Fastify's trustProxy takes it; null when the value is none of the accepted forms. */
export function parseTrustProxy(value: string | undefined): boolean | number | string[] | null {
  const text = value?.trim().toLowerCase();
  if (text === undefined || text === '' || text === 'false' || text === 'off') return false;
  if (text === 'true' || text === 'on') return true;
  if (/^\d{1,2}$/.test(text)) return Number(text);
  const entries = text.split(',').map((entry) => entry.trim());
  const isValid = (entry: string) =>
    PROXY_RANGE_NAMES.has(entry) || isIP(entry) !== 0 || ipaddr.isValidCIDR(entry);
  return entries.length > 0 && entries.every(isValid) ? entries : null;
}

/** The parsed configuration every module receives. */
export type Config = Omit<z.output<typeof EnvSchema>, 'PRISMA_SLOW_QUERY_MS'>;

/** Thrown when the environment is invalid; lists every problem. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Parses an environment (process.env by default); throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): {
  config: Config;
  warnings: string[];
} {
  const parsed = EnvSchema.safeParse(env);
  const problems: string[] = parsed.success
    ? []
    : parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
  const warnings: string[] = [];
  // The checks below read the raw values too, so every problem is listed in one run.
  const isProduction = (parsed.success ? parsed.data.NODE_ENV : env.NODE_ENV) === 'production';
  const key = env.APP_ENCRYPTION_KEY?.trim();
  if (key && decodeKey(key) === null) {
    problems.push('APP_ENCRYPTION_KEY: expected 32 bytes as 64 hex characters or base64');
  }
  if (isProduction) {
    if (!env.DATABASE_URL?.trim()) problems.push('DATABASE_URL: required in production');
    if (!key) problems.push('APP_ENCRYPTION_KEY: required in production');
    if (!env.METRICS_TOKEN?.trim())
      problems.push(`METRICS_TOKEN: required in production (${STRONG_SECRET_HINT})`);
    for (const name of ['JWT_SECRET', 'ADMIN_API_TOKEN', 'METRICS_TOKEN'] as const) {
      const value = env[name]?.trim();
      const weakness = value ? secretWeakness(value) : null;
      if (weakness) problems.push(`${name}: ${weakness} (${STRONG_SECRET_HINT})`);
    }
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const { PRISMA_SLOW_QUERY_MS, ...config } = parsed.data;
  if (PRISMA_SLOW_QUERY_MS !== undefined) {
    warnings.push('PRISMA_SLOW_QUERY_MS is the old name of DB_SLOW_QUERY_MS; rename it');
    if (emptyToUndefined(env.DB_SLOW_QUERY_MS) === undefined) config.DB_SLOW_QUERY_MS = PRISMA_SLOW_QUERY_MS;
  }
  if (isProduction && env.SEED_DEMO === undefined) config.SEED_DEMO = false;
  return { config, warnings };
}

const MIN_SECRET_LENGTH = 32;
const STRONG_SECRET_HINT = `at least ${MIN_SECRET_LENGTH} random characters, e.g. openssl rand -hex 32`;
// A run this long that repeats earlier text, or steps by a constant (abcdefgh, 11111111, 13579...),
// is a pattern, not randomness; in random text of 32-64 characters either is vanishingly rare.
const PATTERN_RUN = 8;
// Shannon entropy of the characters as they occur, times the length: `openssl rand -hex 16`
// (32 characters) measures about 115 bits and almost never under 90; one word repeated far less.
const MIN_SECRET_BITS = 85;

/**
 * Why a shared secret (token, signing secret) is too weak to guard production, or null. Weak: shorter
 * than 32 characters, or low entropy: few distinct characters, a repeated chunk or a run.
 */
export function secretWeakness(value: string): string | null {
  if (value.length < MIN_SECRET_LENGTH) return `too short (${value.length} characters)`;
  const counts = new Map<string, number>();
  for (const c of value) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) bits -= n * Math.log2(n / value.length);
  if (bits < MIN_SECRET_BITS) return 'low entropy (too few distinct characters)';
  const seen = new Set<string>();
  for (let i = 0; i + PATTERN_RUN <= value.length; i += 1) {
    const chunk = value.slice(i, i + PATTERN_RUN);
    if (seen.has(chunk)) return 'low entropy (a repeated sequence)';
    seen.add(chunk);
    const step = chunk.charCodeAt(1) - chunk.charCodeAt(0);
    if ([...chunk].every((c, k) => k === 0 || c.charCodeAt(0) - chunk.charCodeAt(k - 1) === step)) {
      return 'low entropy (a run of consecutive characters)';
    }
  }
  return null;
}

/** Decodes a 32-byte key given as hex or base64; null when it is neither. */
export function decodeKey(value: string): Buffer | null {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  const b = Buffer.from(value, 'base64');
  return b.length === 32 ? b : null;
}

/**
 * Variables the image sets at build (Dockerfile build args) to say which release it is. They are
 * not settings: .env.production leaves them out, since a value there would override the image's.
 */
export const BUILD_VARIABLES = ['APP_VERSION', 'GIT_COMMIT'];

/** The names of every variable the config reads (the production env example must document each). */
export const CONFIG_VARIABLES = Object.keys(EnvSchema.shape).filter(
  (name) => !BUILD_VARIABLES.includes(name),
);
