import { sql } from 'kysely';
import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { SecretBox } from '../lib/crypto.js';
import { sendTelegramMessage } from '../modules/telegram/telegram.client.js';
import {
  CUSTOMER_NOTIFICATION_TYPES,
  formatCustomerNotification,
  formatStaffNotification,
  type StaffNotificationKind,
} from '../modules/telegram/telegram.messages.js';
import { getMerchantBotToken, listStaffChats } from '../modules/telegram/telegram.service.js';
import type { TelegramThrottle } from '../modules/telegram/telegram.throttle.js';
import { deliverWebhook } from '../modules/webhooks/webhooks.delivery.js';
import {
  disableWebhookEndpoint,
  findEndpointsForEvent,
  getWebhookEndpointForDelivery,
} from '../modules/webhooks/webhooks.service.js';
import type { DeliveryResult } from './delivery.js';
import type { OutboxRoutes } from './outbox.dispatcher.js';
import { enqueueEvent, type FanOutTarget, type OutboxEvent } from './outbox.queue.js';

const permanent = (error: string): DeliveryResult => ({
  result: 'error',
  durationMs: 0,
  error,
  isPermanent: true,
});

/**
 * Where the platform's events go: each merchant's webhook endpoints subscribed to the type, the
 * customer's Telegram chat through the merchant's bot, and staff chats for large purchases.
 */
export function createOutboxRoutes(deps: {
  db: Database;
  config: Config;
  box: SecretBox;
  throttle: TelegramThrottle;
}): OutboxRoutes {
  const { db, config, box, throttle } = deps;

  async function customerTargets(
    event: OutboxEvent,
    payload: Record<string, unknown>,
  ): Promise<FanOutTarget[]> {
    if (
      !(CUSTOMER_NOTIFICATION_TYPES as string[]).includes(event.type) ||
      typeof payload.customerId !== 'string'
    ) {
      return [];
    }
    const row = await db
      .selectFrom('customers as c')
      .innerJoin('merchants as m', 'm.id', 'c.merchant_id')
      .select(['c.telegram_user_id as chat', 'm.telegram_bot_token_enc as bot'])
      .where('c.id', '=', payload.customerId)
      .executeTakeFirst();
    if (!row?.chat || !row.bot) return [];
    if (formatCustomerNotification(event.type, payload, 'ru') === null) return [];
    if (event.type === 'purchase.committed' && typeof payload.purchaseId === 'string') {
      // The message explains the earn: the breakdown the commit stored on the purchase.
      const purchase = await db
        .selectFrom('purchases')
        .select('earn_breakdown')
        .where('id', '=', payload.purchaseId)
        .executeTakeFirst();
      if (purchase?.earn_breakdown) {
        return [
          {
            target: 'telegram_customer',
            chatId: String(row.chat),
            payload: { ...payload, earnBreakdown: purchase.earn_breakdown },
          },
        ];
      }
    }
    return [{ target: 'telegram_customer', chatId: String(row.chat) }];
  }

  async function staffTargets(event: OutboxEvent, payload: Record<string, unknown>): Promise<FanOutTarget[]> {
    if (event.type !== 'purchase.committed' || !event.merchant_id || !config.TELEGRAM_NOTIFY_BOT_TOKEN)
      return [];
    const merchant = await db
      .selectFrom('merchants')
      .select(['name', 'notify_large_purchase_minor as threshold'])
      .where('id', '=', event.merchant_id)
      .executeTakeFirst();
    const total = Number(payload.total);
    if (!merchant?.threshold || total < merchant.threshold) return [];
    const chats = await listStaffChats(db, event.merchant_id);
    const data = {
      merchantName: merchant.name,
      purchaseId: payload.purchaseId,
      orderId: payload.orderId,
      total,
      earnedPoints: payload.earnedPoints,
      redeemedPoints: payload.redeemedPoints,
    };
    return chats.map((chatId) => ({
      target: 'telegram_staff',
      type: 'staff.large_purchase',
      payload: data,
      chatId,
    }));
  }

  return {
    async targetsFor(event, payload) {
      if (!event.merchant_id) return [];
      const endpoints = await findEndpointsForEvent(db, { merchantId: event.merchant_id, type: event.type });
      return [
        ...endpoints.map((e): FanOutTarget => ({ target: 'webhook', endpointId: e.id })),
        ...(await customerTargets(event, payload)),
        ...(await staffTargets(event, payload)),
      ];
    },

    async deliver(event, payload) {
      switch (event.target) {
        case 'webhook': {
          const endpoint = event.endpoint_id
            ? await getWebhookEndpointForDelivery(db, event.endpoint_id, box)
            : null;
          if (!endpoint) return permanent('webhook endpoint was deleted');
          if (!endpoint.enabled)
            return permanent(`webhook endpoint is disabled: ${endpoint.disabledReason ?? ''}`);
          const occurredAt =
            typeof payload.occurredAt === 'string' ? new Date(payload.occurredAt) : event.created_at;
          return deliverWebhook({
            endpoint: { url: endpoint.url, secrets: endpoint.secrets },
            // Stable across retries and the same for every endpoint of one event.
            messageId: `evt_${event.parent_id ?? event.id}`,
            type: event.type,
            payload,
            occurredAt: Number.isNaN(occurredAt.getTime()) ? event.created_at : occurredAt,
            allowPrivateNetworks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
            timeoutMs: config.WEBHOOK_TIMEOUT_MS,
          });
        }
        case 'telegram_customer': {
          if (!event.merchant_id || !event.chat_id) return permanent('no merchant or chat');
          const token = await getMerchantBotToken(db, box, event.merchant_id);
          if (!token) return permanent("the merchant's Telegram bot is not connected");
          const text = formatCustomerNotification(event.type, payload, 'ru');
          if (text === null) return { result: 'ok', durationMs: 0 };
          return sendTelegramMessage({
            token,
            chatId: event.chat_id,
            text,
            apiBaseUrl: config.TELEGRAM_API_BASE_URL,
            throttle,
          });
        }
        case 'telegram_staff': {
          const token = config.TELEGRAM_NOTIFY_BOT_TOKEN;
          if (!token) return permanent('TELEGRAM_NOTIFY_BOT_TOKEN is not set');
          if (!event.chat_id) return permanent('no chat');
          const kind = event.type.replace(/^staff\./, '') as StaffNotificationKind;
          const text = formatStaffNotification(kind, payload as never, 'ru');
          return sendTelegramMessage({
            token,
            chatId: event.chat_id,
            text,
            apiBaseUrl: config.TELEGRAM_API_BASE_URL,
            throttle,
          });
        }
        default:
          return permanent(`unknown target ${String(event.target)}`);
      }
    },

    async onDead(event, result) {
      if (event.target !== 'webhook' || !event.endpoint_id || !event.merchant_id) return;
      // Not the delivery lookup: its secrets may be the very reason the event died.
      const endpoint = await db
        .selectFrom('webhook_endpoints')
        .select(['id', 'url'])
        .where('id', '=', event.endpoint_id)
        .executeTakeFirst();
      if (!endpoint) return;
      if (result.statusCode === 410)
        await disableWebhookEndpoint(db, { endpointId: endpoint.id, reason: 'HTTP 410 Gone' });
      if (!config.TELEGRAM_NOTIFY_BOT_TOKEN) return;
      // Tell the merchant's staff, at most once an hour per endpoint.
      const recent = await db
        .selectFrom('outbox_events')
        .select('id')
        .where('type', '=', 'staff.webhook_failing')
        .where(sql<string>`payload->>'endpointId'`, '=', endpoint.id)
        .where('created_at', '>', sql<Date>`now() - interval '1 hour'`)
        .executeTakeFirst();
      if (recent) return;
      const merchant = await db
        .selectFrom('merchants')
        .select('name')
        .where('id', '=', event.merchant_id)
        .executeTakeFirst();
      for (const chatId of await listStaffChats(db, event.merchant_id)) {
        await enqueueEvent(db, {
          merchantId: event.merchant_id,
          type: 'staff.webhook_failing',
          payload: {
            endpointId: endpoint.id,
            url: endpoint.url,
            lastError: result.error ?? result.result,
            merchantName: merchant?.name,
          },
          target: 'telegram_staff',
          chatId,
        });
      }
    },
  };
}
