import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { sendTelegramMessage } from './telegram.client.js';
import { handleNotifyBotUpdate } from './telegram.service.js';
import { TelegramThrottle } from './telegram.throttle.js';

// Only what handleNotifyBotUpdate reads is checked; Telegram adds fields over time, so the rest passes.
const TelegramUpdate = z.looseObject({
  update_id: z.number().int(),
  message: z
    .looseObject({
      text: z.string().optional(),
      chat: z.looseObject({ id: z.union([z.number().int(), z.string()]), type: z.string() }),
      from: z
        .looseObject({ username: z.string().optional(), language_code: z.string().optional() })
        .optional(),
    })
    .optional(),
});

const OkResponse = z.object({ ok: z.literal(true) });

function sameSecret(presented: string, expected: string): boolean {
  // Hash both sides so the comparison takes the same time whatever the lengths.
  const digest = (v: string) => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

/** Telegram webhooks of the platform: POST /telegram/notify/webhook (the staff notify bot). */
export function telegramRoutes(deps: {
  db: Database;
  config: Config;
  /** Shared with other senders of the notify bot in this process, when they exist. */
  throttle?: TelegramThrottle;
}): FastifyPluginAsyncZod {
  return async (app) => {
    const { config } = deps;
    const throttle = deps.throttle ?? new TelegramThrottle();
    // Replies go out after the webhook has been answered; close() waits for them.
    const pendingReplies = new Set<Promise<void>>();
    app.addHook('onClose', async () => {
      await Promise.allSettled(pendingReplies);
    });

    app.post(
      '/telegram/notify/webhook',
      {
        schema: {
          hide: true,
          body: TelegramUpdate,
          response: { 200: OkResponse },
        },
        // Before the body is parsed: a stranger learns nothing about our validation.
        onRequest: async (request) => {
          const token = config.TELEGRAM_NOTIFY_BOT_TOKEN;
          const secret = config.TELEGRAM_NOTIFY_WEBHOOK_SECRET;
          if (!token || !secret) throw new AppError('not_found', 'The notify bot is not configured');
          const presented = request.headers['x-telegram-bot-api-secret-token'];
          if (typeof presented !== 'string' || !sameSecret(presented, secret)) {
            throw new AppError('unauthorized', 'Missing or wrong X-Telegram-Bot-Api-Secret-Token');
          }
        },
      },
      async (request) => {
        const token = config.TELEGRAM_NOTIFY_BOT_TOKEN;
        if (!token) throw new AppError('not_found', 'The notify bot is not configured');
        // Linking is committed before we answer; the reply is sent in the background so Telegram
        // gets its 200 at once (a slow answer makes it resend the update).
        await handleNotifyBotUpdate(deps.db, {
          update: request.body,
          sendReply: (chatId, text) => {
            const sending = sendTelegramMessage({
              token,
              chatId,
              text,
              apiBaseUrl: config.TELEGRAM_API_BASE_URL,
              throttle,
            }).then((result) => {
              if (result.result !== 'ok') {
                request.log.warn({ result: result.result, error: result.error }, 'notify bot reply failed');
              }
            });
            pendingReplies.add(sending);
            void sending.finally(() => pendingReplies.delete(sending));
          },
        });
        return { ok: true as const };
      },
    );
  };
}
