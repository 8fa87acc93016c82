import { randomUUID } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Config } from '../../src/config.js';
import type { Database } from '../../src/db/database.js';
import { NotificationListener } from '../../src/db/listener.js';
import { type Log, OutboxDispatcher, type OutboxRoutes } from '../../src/jobs/outbox.dispatcher.js';
import { createOutboxRoutes } from '../../src/jobs/outbox.routes.js';
import { SecretBox } from '../../src/lib/crypto.js';
import { ensureAppKey, readOrCreateKeyRow } from '../../src/modules/keys/keys.service.js';
import { TelegramThrottle } from '../../src/modules/telegram/telegram.throttle.js';
import { createWebhookEndpoint } from '../../src/modules/webhooks/webhooks.service.js';
import { type ReceiverMode, startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import type { TestMerchant } from './factories.js';
import { postCommit } from './pos.js';

/** A Log that keeps every line, so a test can assert that nothing went wrong unnoticed. */
export interface RecordingLog extends Log {
  lines: Array<{ level: 'info' | 'warn' | 'error'; msg: string; obj: object }>;
  errors(): Array<{ msg: string; obj: object }>;
}

/** Creates a Log that records instead of printing. */
export function createRecordingLog(): RecordingLog {
  const lines: RecordingLog['lines'] = [];
  const push = (level: 'info' | 'warn' | 'error') => (obj: object, msg?: string) => {
    lines.push({ level, msg: msg ?? '', obj });
  };
  return {
    lines,
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    errors: () => lines.filter((l) => l.level === 'error'),
  };
}

/** A started dispatcher with the production routes, its own LISTEN connection and a recording log. */
export interface RunningDispatcher {
  dispatcher: OutboxDispatcher;
  routes: OutboxRoutes;
  log: RecordingLog;
  stop(): Promise<void>;
}

/**
 * Starts a real OutboxDispatcher (createOutboxRoutes, a TelegramThrottle, NOTIFY wake-ups) on a
 * database, as the worker process does. `routes` may wrap the production routes (to observe them).
 */
export async function startTestDispatcher(options: {
  db: Database;
  url: string;
  config: Config;
  wrapRoutes?: (routes: OutboxRoutes) => OutboxRoutes;
  isStarted?: boolean;
}): Promise<RunningDispatcher> {
  const { db, config } = options;
  const base = createOutboxRoutes({
    db,
    config,
    box: await ensureAppKey(db, config),
    throttle: new TelegramThrottle(),
  });
  const routes = options.wrapRoutes ? options.wrapRoutes(base) : base;
  const log = createRecordingLog();
  const listener = new NotificationListener(options.url);
  await listener.start();
  const dispatcher = new OutboxDispatcher({ db, config, routes, listener, log });
  if (options.isStarted !== false) await dispatcher.start();
  return {
    dispatcher,
    routes,
    log,
    async stop() {
      await dispatcher.stop();
      await listener.close();
    },
  };
}

/** A loopback receiver wired to a new endpoint of the merchant (the receiver verifies its secret). */
export interface ReceiverEndpoint {
  receiver: WebhookReceiver;
  endpointId: string;
  secret: string;
}

/** Starts a receiver and creates a webhook endpoint pointing at it (loopback allowed). */
export async function createReceiverEndpoint(
  db: Database,
  options: {
    merchantId: string;
    eventTypes?: string[];
    mode?: ReceiverMode;
    /** Seals the secret; default: under the database's installation key, as the app does. */
    box?: SecretBox;
  },
): Promise<ReceiverEndpoint> {
  const receiver = await startWebhookReceiver();
  if (options.mode) receiver.setMode(options.mode);
  const { id, secret } = await createWebhookEndpoint(db, {
    merchantId: options.merchantId,
    url: receiver.url,
    eventTypes: options.eventTypes,
    allowPrivateNetworks: true,
    box: options.box ?? new SecretBox(await readOrCreateKeyRow(db)),
  });
  receiver.setSecrets([secret]);
  return { receiver, endpointId: id, secret };
}

/** How many times the receiver got each `webhook-id` (of events of `type` only, when given). */
export function countByWebhookId(receiver: WebhookReceiver, type?: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const delivery of receiver.deliveries) {
    if (type !== undefined && (delivery.body as { type?: string } | undefined)?.type !== type) continue;
    const id = String(delivery.headers['webhook-id'] ?? '');
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Commits a purchase through the integration API (as a till does); expects 201. */
export async function commitPurchaseViaApi(
  app: FastifyInstance,
  merchant: TestMerchant,
  options: { customerId: string; total: number; orderId?: string },
): Promise<{ id: string; orderId: string }> {
  const orderId = options.orderId ?? `order-${randomUUID()}`;
  const res = await postCommit(app, merchant, {
    customer: { customerId: options.customerId },
    receipt: { total: options.total },
    orderId,
    outletId: merchant.outletId,
  });
  if (res.statusCode !== 201) throw new Error(`purchase failed: ${res.statusCode} ${res.body}`);
  const purchase = res.json().purchase as { id: string; orderId: string };
  return purchase;
}

/** A call to the admin API with the operator's bearer token (or none). */
export function adminRequest(
  app: FastifyInstance,
  options: {
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    url: string;
    token?: string | null;
    payload?: object;
  },
): Promise<LightMyRequestResponse> {
  return app.inject({
    method: options.method,
    url: options.url,
    headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
    ...(options.payload ? { payload: options.payload } : {}),
  });
}

/** A valid purchase.committed payload (version 1) for events written straight into the outbox. */
export function purchaseCommittedPayload(options: { customerId: string; orderId: string; total?: number }) {
  const total = options.total ?? 10_000;
  return {
    purchaseId: randomUUID(),
    orderId: options.orderId,
    customerId: options.customerId,
    total,
    earnedPoints: Math.floor(total / 100),
    redeemedPoints: 0,
    pendingPoints: 0,
    balance: { available: Math.floor(total / 100), pending: 0 },
    outletId: null,
    occurredAt: new Date().toISOString(),
  };
}

/** Resolves after `ms` (only for proving that nothing happens during a window). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
