import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import { oldestTransactionSeconds } from './db/activity.js';
import { createDatabaseWatch } from './db/availability.js';
import type { Database } from './db/database.js';
import type { NotificationListener } from './db/listener.js';
import { ApiKeyAuthenticator } from './http/auth.js';
import { errorBody, registerErrorHandler } from './http/errors.js';
import { createMetrics, createOutboxMetrics, type Metrics, registerHttpMetrics } from './http/metrics.js';
import { FailureLimiter } from './http/rate-limit.js';
import { RequestStats, registerRequestStats } from './http/request-stats.js';
import { registerSecurityHeaders, requestIdOf } from './http/security-headers.js';
import { createFleetCounters, startSharedCounters } from './http/shared-metrics.js';
import { webRoutes } from './http/static.js';
import { registerSafetySwitches } from './http/switches.js';
import { registerRequestTracing } from './http/tracing.js';
import { countAliveWorkers } from './jobs/heartbeat.js';
import { OutboxNotifier } from './jobs/outbox.notify.js';
import { oldestPendingSeconds, outboxCounts } from './jobs/outbox.queue.js';
import { createAlertSender } from './jobs/workers.js';
import { lanes } from './lib/coalescer.js';
import { resolveRelease } from './lib/release.js';
import { traceLogMixin } from './lib/tracing.js';
import { adminRoutes } from './modules/admin/admin.routes.js';
import { merchantAdminRoutes } from './modules/admin/merchants.admin.routes.js';
import { SwitchBoard } from './modules/admin/switches.service.js';
import { systemAdminRoutes } from './modules/admin/system.routes.js';
import { authRoutes } from './modules/auth/auth.routes.js';
import { createLoginLimiters } from './modules/auth/login-limits.js';
import { botRoutes } from './modules/bot/bot.routes.js';
import { CampaignCache } from './modules/campaigns/campaigns.service.js';
import { clientRoutes } from './modules/client/client.routes.js';
import { IntegrationReads, READ_BATCH } from './modules/integration/integration.reads.js';
import { integrationRoutes } from './modules/integration/integration.routes.js';
import { ContextCache } from './modules/integration/integration.service.js';
import { ensureAppKey, sealPlaintextWebhookSecrets } from './modules/keys/keys.service.js';
import { CommitBatcher } from './modules/ledger/ledger.batcher.js';
import { CACHE_CHANNEL } from './modules/merchants/merchants.service.js';
import { opsRoutes } from './modules/ops/ops.routes.js';
import { portalRoutes } from './modules/portal/portal.routes.js';
import { observeTelegramCalls } from './modules/telegram/telegram.client.js';
import { telegramRoutes } from './modules/telegram/telegram.routes.js';
import { webhookAdminRoutes } from './modules/webhooks/webhooks.routes.js';

/** How long a process keeps a merchant's active campaigns when a change notification is missed. */
const CAMPAIGN_CACHE_MS = 5_000;

/** What the app is built on; the entry points (and tests) create these. */
export interface AppDeps {
  db: Database;
  /** Read replica for the portal's dashboard and CSV export (DATABASE_READ_URL); default `db`. */
  readDb?: Database;
  redis?: Redis | null;
  metrics?: Metrics;
  /** LISTEN connection; when given, API-key and rules caches drop on NOTIFY. */
  listener?: NotificationListener;
  /** Logger: true for pino with the config's level; false in tests. */
  logger?: boolean;
}

/** Builds the HTTP application: cross-cutting plugins, then each module, registered explicitly. */
export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  // First: without a configured APP_ENCRYPTION_KEY the installation's own key is filled in here.
  const box = await ensureAppKey(deps.db, config);
  const redis = deps.redis ?? null;
  const metrics = deps.metrics ?? createMetrics();
  const app = Fastify({
    logger: deps.logger === false ? false : { level: config.LOG_LEVEL, mixin: traceLogMixin },
    // Behind a reverse proxy: whom to believe about the client's address and scheme (TRUST_PROXY).
    trustProxy: typeof config.TRUST_PROXY === 'number' ? trustHops(config.TRUST_PROXY) : config.TRUST_PROXY,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Every log line carries the request id; a client's X-Request-Id is kept when it is a short token.
    requestIdHeader: false,
    genReqId: (request) => requestIdOf(request.headers['x-request-id']),
    // Per-request log lines only at debug: metrics count every request, errors are logged anyway.
    logController: new LogController({
      disableRequestLogging: config.LOG_LEVEL !== 'debug' && config.LOG_LEVEL !== 'trace',
    }),
    routerOptions: { ignoreTrailingSlash: true },
    // Errors the router raises before any route runs (bad percent-encoding, over-long ids) get the
    // same error body as everything else.
    frameworkErrors: (error, _request, reply) => {
      const status = error.statusCode ?? 400;
      const code = status === 414 ? 'uri_too_long' : 'bad_url';
      (reply as FastifyReply)
        .status(status)
        .send(errorBody(code, 'The request URL is malformed or too long'));
    },
  });
  // Only JSON bodies: text/plain would otherwise be parsed and fail later with a confusing message.
  app.removeContentTypeParser('text/plain');
  // Not awaited: the API starts (and answers /live) even while Postgres is down.
  void sealPlaintextWebhookSecrets(deps.db, box).catch((err) =>
    app.log.warn({ err }, 'webhook secrets stored in plain text were not sealed; retried at the next start'),
  );
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    done(null, payload);
  });
  await registerSecurityHeaders(app);
  registerErrorHandler(app);
  registerRequestTracing(app);
  registerHttpMetrics(app, metrics, config.ALERT_HTTP_SLOW_THRESHOLD_MS);
  const requestStats = new RequestStats(deps.db, {
    slowThresholdMs: config.ALERT_HTTP_SLOW_THRESHOLD_MS,
    sampleRate: config.ALERTS_5XX_SAMPLE_RATE,
  });
  registerRequestStats(app, requestStats);
  requestStats.start();
  const switches = new SwitchBoard(deps.db, {
    maintenance: config.MAINTENANCE_MODE,
    readOnly: config.READ_ONLY_MODE,
  });
  await switches.start({ listener: deps.listener });
  app.addHook('onClose', async () => switches.stop());
  registerSafetySwitches(app, switches);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Loyalty platform API',
        version: '1.0.0',
        description:
          'POS integration API (X-Api-Key), client API (customer Bearer token) and operations endpoints. ' +
          'Money is in integer minor units (kopecks), points are integers. Errors: ' +
          '{"error": {"code", "message", "details"}}.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      // Relative unless API_BASE_URL names the public address, so "try it out" works behind a proxy.
      servers: [{ url: config.API_BASE_URL ?? '/', description: 'This installation' }],
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key' },
          userToken: { type: 'http', scheme: 'bearer' },
          operatorToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'Operator access token or ADMIN_API_TOKEN',
          },
          accessToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        },
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  // Every Bot API call this process makes (notify bot replies, bot setup) is counted.
  observeTelegramCalls((call) =>
    metrics.externalRequests.inc({
      provider: 'telegram',
      result: call.result,
      status: String(call.status ?? 'none'),
    }),
  );
  const apiKeys = new ApiKeyAuthenticator(deps.db, config.API_KEY_CACHE_SECONDS);
  const contexts = new ContextCache(config.API_KEY_CACHE_SECONDS * 1000);
  // Campaigns are cached only where changes are announced to this process (the listener).
  const campaigns = new CampaignCache(deps.db, deps.listener ? CAMPAIGN_CACHE_MS : 0);
  const notifier = new OutboxNotifier(deps.db);
  const commits = config.GROUP_COMMIT
    ? new CommitBatcher(deps.db, {
        maxBatch: config.GROUP_COMMIT_MAX_BATCH,
        ...lanes(config.GROUP_COMMIT_IN_FLIGHT, config.GROUP_BATCH_SLOW_MS, () =>
          metrics.slowBatches.inc({ kind: 'commit' }),
        ),
      })
    : undefined;
  const reads = config.GROUP_READS
    ? new IntegrationReads(deps.db, {
        ...READ_BATCH,
        ...lanes(config.GROUP_READS_IN_FLIGHT, config.GROUP_BATCH_SLOW_MS, () =>
          metrics.slowBatches.inc({ kind: 'read' }),
        ),
      })
    : undefined;
  app.addHook('onClose', async () => notifier.close());
  if (deps.listener) {
    await deps.listener.listen(CACHE_CHANNEL);
    deps.listener.on('notification', (channel: string) => {
      if (channel === CACHE_CHANNEL) {
        apiKeys.clear();
        contexts.clear();
        campaigns.clear();
      }
    });
    deps.listener.on('reconnect', () => {
      apiKeys.clear();
      contexts.clear();
      campaigns.clear();
    });
  }
  const codeFailures = new FailureLimiter({
    redis,
    max: config.CODE_RESOLVE_MAX_FAILURES,
    windowSeconds: config.CODE_RESOLVE_WINDOW_SECONDS,
    prefix: 'loyalty:code-failures',
  });

  app.decorateRequest('sessionUser', null);

  // While PostgreSQL is away requests answer 503 database_unavailable (registerErrorHandler); this
  // watch tells operators on Telegram, without the database, once the outage lasts long enough.
  const watch = createDatabaseWatch(deps.db, config, createAlertSender({ config, log: app.log }), redis);
  watch.start();
  app.addHook('onClose', async () => watch.stop());
  const collectDbMetrics = createOutboxMetrics(metrics, {
    check: () => watch.check(),
    read: async () => {
      const [counts, oldest, oldestTransaction, workersAlive] = await Promise.all([
        outboxCounts(deps.db),
        oldestPendingSeconds(deps.db),
        oldestTransactionSeconds(deps.db),
        countAliveWorkers(deps.db),
      ]);
      return {
        pending: counts.pending + counts.processing,
        dead: counts.deadTotal,
        oldestPendingSeconds: oldest,
        oldestTransactionSeconds: oldestTransaction,
        workersAlive,
      };
    },
  });

  // external_requests_total of every process, the workers' included: each adds its counts to
  // PostgreSQL, and /metrics serves the sums.
  const sharedCounters = startSharedCounters(deps.db, metrics);
  app.addHook('onClose', async () => sharedCounters.stop());
  const readFleetCounters = createFleetCounters(metrics.registry);

  await app.register(
    opsRoutes({
      watch,
      redis,
      metrics,
      metricsToken: config.METRICS_TOKEN,
      release: resolveRelease(config),
      collectDbMetrics: async () => {
        // While PostgreSQL is away the fleet's counters keep their last values, without a warning
        // per scrape (loyalty_db_up already says it is away).
        await Promise.all([collectDbMetrics(), readFleetCounters(deps.db).catch(() => {})]);
      },
    }),
  );
  await app.register(
    integrationRoutes({ db: deps.db, codeFailures, apiKeys, contexts, campaigns, notifier, commits, reads }),
    {
      prefix: '/api/v1/integration',
    },
  );
  await app.register(clientRoutes({ db: deps.db, config }), { prefix: '/api/v1/client' });
  await app.register(
    authRoutes({
      db: deps.db,
      config,
      metrics,
      limiters: createLoginLimiters(config, redis, 'portal'),
      audience: 'portal',
    }),
    {
      prefix: '/api/v1/portal',
    },
  );
  await app.register(
    authRoutes({
      db: deps.db,
      config,
      metrics,
      limiters: createLoginLimiters(config, redis, 'admin'),
      audience: 'admin',
    }),
    {
      prefix: '/api/v1/admin',
    },
  );
  await app.register(portalRoutes({ db: deps.db, readDb: deps.readDb ?? deps.db, config }), {
    prefix: '/api/v1/portal',
  });
  await app.register(adminRoutes({ db: deps.db, config, switches }), {
    prefix: '/api/v1/admin',
  });
  await app.register(merchantAdminRoutes({ db: deps.db, config }), { prefix: '/api/v1/admin' });
  await app.register(systemAdminRoutes({ db: deps.db, config, redis, switches }), {
    prefix: '/api/v1/admin',
  });
  await app.register(
    webhookAdminRoutes({
      db: deps.db,
      config,
      allowPrivateNetworks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    }),
    { prefix: '/api/v1/admin' },
  );
  await app.register(telegramRoutes({ db: deps.db, config }));
  await app.register(botRoutes({ db: deps.db, config }));
  // The web front end (portal, admin panel, Mini App) from web/dist: /assets/* and the three surfaces only.
  await app.register(webRoutes());

  app.get('/', { schema: { hide: true } }, async () => ({
    name: 'loyalty-platform',
    docs: '/docs',
    health: '/health',
  }));
  return app;
}

/** Fastify's trustProxy for a hop count: the nearest `hops` addresses are proxies, the next is the client. */
function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops;
}
