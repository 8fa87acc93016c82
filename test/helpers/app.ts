import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { NotificationListener } from '../../src/db/listener.js';
import { createTestDatabase, type TestDatabase, type TestDatabaseOptions } from './db.js';

/** An app on its own database, built as the server builds it (no network listener needed). */
export interface TestApp extends TestDatabase {
  app: FastifyInstance;
  config: Config;
  close(): Promise<void>;
}

/** Builds the app with test configuration; `env` overrides variables. */
export async function createTestApp(
  options: {
    env?: Record<string, string>;
    redis?: Redis | null;
    listen?: boolean;
    database?: TestDatabaseOptions;
  } = {},
): Promise<TestApp> {
  const database = await createTestDatabase(options.database);
  const { config } = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...options.env });
  const listener = options.listen ? new NotificationListener(database.url) : undefined;
  await listener?.start();
  const app = await buildApp(config, {
    db: database.db,
    redis: options.redis ?? null,
    logger: false,
    listener,
  });
  await app.ready();
  return {
    ...database,
    app,
    config,
    async close() {
      await app.close();
      await listener?.close();
      await database.drop();
    },
  };
}
