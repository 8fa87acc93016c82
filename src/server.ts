import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { NotificationListener } from './db/listener.js';
import { prepareSchema, SchemaError } from './db/migrate.js';
import { createMetrics } from './http/metrics.js';
import { startWorkers } from './jobs/workers.js';
import { startTracing } from './lib/tracing.js';
import { seedDemo, seedDemoOperator } from './modules/demo/demo.service.js';
import { registerNotifyWebhook } from './modules/telegram/telegram.service.js';
import { openRuntime } from './runtime.js';

// The API process. With no DATABASE_URL (a fresh machine) it starts an embedded PostgreSQL,
// migrates, seeds a demo merchant on an empty database and prints how to use it. `npm start`
// passes --with-workers, so one process also runs the outbox worker and the periodic jobs
// (production runs them in the separate worker service, WORKERS_ENABLED=1).
// Migrations: it applies them itself only on the embedded database or with --migrate (`npm start`,
// `npm run dev`); otherwise (production: `node dist/server.js`) it only checks the schema and
// refuses to start while a migration is pending (`npm run db:migrate` is a deploy step).

async function main(): Promise<void> {
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const { config, warnings } = loaded;
  for (const warning of warnings) console.warn(`config: ${warning}`);
  const isWithWorkers = config.WORKERS_ENABLED || process.argv.includes('--with-workers');
  let isAdminTokenGenerated = false;
  if (!config.ADMIN_API_TOKEN && config.NODE_ENV !== 'production') {
    config.ADMIN_API_TOKEN = `adm_${randomBytes(18).toString('base64url')}`;
    isAdminTokenGenerated = true;
  }

  const stopTracing = await startTracing({
    endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: 'loyalty-api',
  });
  const metrics = createMetrics();
  const say = (message: string) => console.log(message);
  // Set below; the embedded database can only be lost once the runtime is open.
  let close: (reason: string, exitCode?: number) => Promise<void> = async () => {};
  const runtime = await openRuntime(config, {
    allowEmbedded: true,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    log: say,
    onSlowQuery: (sqlText, ms) => {
      metrics.dbSlowQueries.inc();
      console.warn(JSON.stringify({ level: 'warn', msg: 'slow query', ms: Math.round(ms), sql: sqlText }));
    },
    onPreparedStatementsOff: (message) => console.warn(JSON.stringify({ level: 'warn', msg: message })),
    // Serving without a database helps nobody: stop, so that a supervisor or the person at the
    // terminal sees it, instead of answering 503 and logging refused connections forever.
    onEmbeddedExit: (logTail) => {
      console.error(`the embedded PostgreSQL stopped on its own; its last log lines:\n${logTail}`);
      void close('embedded PostgreSQL lost', 1);
    },
  });
  const listener = new NotificationListener(runtime.directUrl);
  let isClosing = false;
  let stopWorkers: (() => Promise<void>) | null = null;
  // Assigned once built: a signal during the migrations must not meet an uninitialised binding.
  let app: FastifyInstance | null = null;
  close = async (reason: string, exitCode = 0) => {
    if (isClosing) return;
    isClosing = true;
    say(`${reason}: shutting down`);
    await stopWorkers?.().catch(() => {});
    await app?.close().catch(() => {});
    await listener.close();
    await runtime.close();
    await stopTracing().catch(() => {});
    process.exit(exitCode);
  };
  // `on`, not `once`: Ctrl-C reaches this process twice (from the terminal and forwarded by npm), and
  // a second signal without a listener would kill it in the middle of the shutdown.
  process.on('SIGINT', () => void close('SIGINT'));
  process.on('SIGTERM', () => void close('SIGTERM'));

  try {
    await prepareSchema(runtime.db, {
      migrate: runtime.embedded !== null || process.argv.includes('--migrate'),
      warn: (message) => console.warn(`warning: ${message}`),
    });
  } catch (error) {
    await runtime.close();
    if (!(error instanceof SchemaError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
  await listener.start();
  app = await buildApp(config, {
    db: runtime.db,
    readDb: runtime.readDb,
    redis: runtime.redis,
    metrics,
    listener,
  });

  let demo = null;
  let operator = null;
  if (config.SEED_DEMO) {
    operator = await seedDemoOperator(runtime.db);
    const { count } = await runtime.db
      .selectFrom('merchants')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .executeTakeFirstOrThrow();
    if (Number(count) === 0) demo = await seedDemo(runtime.db);
  }

  await app.listen({ port: config.PORT, host: config.HOST });
  if (isWithWorkers) {
    stopWorkers = await startWorkers({
      db: runtime.db,
      sessionDb: runtime.sessionDb,
      config,
      metrics,
      listener,
      log: app.log,
    });
  }
  if (config.TELEGRAM_NOTIFY_BOT_TOKEN && config.API_BASE_URL) {
    registerNotifyWebhook(config)
      .then((r) => app.log.info({ url: r.url }, 'notify bot webhook registered'))
      .catch((err) => app.log.error({ err }, 'notify bot webhook could not be registered'));
  }
  const base = `http://localhost:${config.PORT}`;
  say('');
  say(`Loyalty platform is running at ${base}`);
  say(`  API reference:  ${base}/docs`);
  say(`  Portal:         ${base}/portal   Admin panel: ${base}/admin   Mini App: ${base}/miniapp`);
  say(`  Health:         ${base}/health   Metrics: ${base}/metrics`);
  say(`  Database:       ${runtime.embedded ? 'embedded PostgreSQL' : 'DATABASE_URL'}`);
  say(
    `  Workers:        ${isWithWorkers ? 'outbox delivery and periodic jobs run in this process' : 'off (WORKERS_ENABLED=1 runs them)'}`,
  );
  if (isAdminTokenGenerated)
    say(`  Admin API:      ${base}/api/v1/admin  (Authorization: Bearer ${config.ADMIN_API_TOKEN})`);
  if (demo) {
    say('');
    say('Demo merchant created (this database was empty):');
    for (const [key, value] of Object.entries(demo)) say(`  ${key}=${value}`);
    say('');
    say('Try it:');
    say(`  curl -s -X POST ${base}/api/v1/client/code -H "Authorization: Bearer ${demo.SMOKE_USER_TOKEN}"`);
    say(
      `  curl -s -X POST ${base}/api/v1/integration/customers/resolve -H "X-Api-Key: ${demo.INTEGRATION_API_KEY}" ` +
        `-H 'Content-Type: application/json' -d '{"phone":"${demo.SMOKE_PHONE}"}'`,
    );
  }
  if (operator) {
    say('');
    say(`Demo operator for the admin panel (${base}/admin): ${operator.email} / ${operator.password}`);
  }
  if (!demo && config.SEED_DEMO) {
    say('  (existing data kept; `npm run cli -- demo:seed --json` creates another demo merchant)');
  }
  say('Press Ctrl-C to stop.');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
