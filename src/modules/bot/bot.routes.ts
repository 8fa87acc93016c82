import type { FastifyBaseLogger } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { type Bot, BotError } from 'grammy';
import type { Update } from 'grammy/types';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { SecretBox } from '../../lib/crypto.js';
import { assertMerchantActive } from '../merchants/merchants.service.js';
import { describeTelegramError } from '../telegram/telegram.client.js';
import { verifyMerchantBotSecret } from '../telegram/telegram.service.js';
import { type BotMerchant, createMerchantBot, type MerchantBotDeps } from './bot.handlers.js';
import { findMerchantBot, hasMerchantBot, type MerchantBot } from './bot.service.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// grammY reads the fields it knows and ignores the rest; only update_id is required of every update.
const TelegramUpdate = z.looseObject({ update_id: z.number().int() });
const OkResponse = z.object({ ok: z.literal(true) });

/** How many merchants' bots are kept built in one process; the oldest is rebuilt when needed. */
const MAX_CACHED_BOTS = 500;

/** Built grammY bots by merchant, rebuilt when the merchant connects another bot (token change). */
export class MerchantBotCache {
  private readonly bots = new Map<
    string,
    { token: string; username: string; bot: Bot; merchant: BotMerchant }
  >();

  constructor(private readonly deps: MerchantBotDeps) {}

  /** The bot for a merchant's current token, built once and reused across updates. */
  get(found: MerchantBot): Bot {
    const cached = this.bots.get(found.merchantId);
    if (cached && cached.token === found.token && cached.username === found.username) {
      // A renamed merchant greets with the new name without rebuilding the bot.
      cached.merchant.name = found.merchantName;
      return cached.bot;
    }
    const merchant = { id: found.merchantId, name: found.merchantName };
    const bot = createMerchantBot({
      token: found.token,
      username: found.username,
      merchant,
      deps: this.deps,
    });
    this.bots.delete(found.merchantId);
    if (this.bots.size >= MAX_CACHED_BOTS) {
      const oldest = this.bots.keys().next();
      if (!oldest.done) this.bots.delete(oldest.value);
    }
    this.bots.set(found.merchantId, { token: found.token, username: found.username, bot, merchant });
    return bot;
  }
}

/** Webhooks of merchants' customer bots: POST /telegram/bots/:merchantId/webhook. */
export function botRoutes(deps: {
  db: Database;
  config: Config;
  /** Opens sealed bot tokens; built from APP_ENCRYPTION_KEY when not given. */
  box?: SecretBox;
  /** Logs failed updates; the app's logger when not given. */
  log?: FastifyBaseLogger;
}): FastifyPluginAsyncZod {
  return async (app) => {
    const box = deps.box ?? new SecretBox(deps.config.APP_ENCRYPTION_KEY);
    const log = deps.log ?? app.log;
    const bots = new MerchantBotCache({ db: deps.db, config: deps.config, log });
    // Updates are handled after Telegram has its 200 (a slow answer makes it resend the update);
    // close() waits for the ones still running.
    const pending = new Set<Promise<void>>();
    app.addHook('onClose', async () => {
      await Promise.allSettled(pending);
    });

    app.post(
      '/telegram/bots/:merchantId/webhook',
      {
        schema: {
          hide: true,
          params: z.object({ merchantId: z.string() }),
          body: TelegramUpdate,
          response: { 200: OkResponse },
        },
        // Before the body is parsed: a stranger learns nothing about our validation.
        onRequest: async (request) => {
          const { merchantId } = request.params;
          if (!UUID.test(merchantId)) throw new AppError('bot_not_connected', 'No bot is connected here');
          const header = request.headers['x-telegram-bot-api-secret-token'];
          const secret = typeof header === 'string' ? header : undefined;
          if (await verifyMerchantBotSecret(deps.db, { merchantId, secret })) {
            // Telegram keeps the update and shows the refusal in getWebhookInfo; the bot stays silent.
            await assertMerchantActive(deps.db, merchantId);
            return;
          }
          if (!(await hasMerchantBot(deps.db, merchantId))) {
            throw new AppError('bot_not_connected', 'No bot is connected here');
          }
          throw new AppError('unauthorized', 'Missing or wrong X-Telegram-Bot-Api-Secret-Token');
        },
      },
      async (request) => {
        const found = await findMerchantBot(deps.db, { merchantId: request.params.merchantId, box });
        if (!found) throw new AppError('bot_not_connected', 'No bot is connected here');
        const bot = bots.get(found);
        // The body passed the secret check (Telegram sent it) and has an update_id; grammY takes
        // the Bot API's Update as it comes.
        const update = request.body as unknown as Update;
        const handling = bot.handleUpdate(update).catch((error: unknown) => {
          log.error(
            {
              merchantId: found.merchantId,
              updateId: update.update_id,
              // BotError wraps what the handler threw (a database or Bot API failure).
              error: describeTelegramError(error instanceof BotError ? error.error : error, found.token),
            },
            'merchant bot update failed',
          );
        });
        pending.add(handling);
        void handling.finally(() => pending.delete(handling));
        return { ok: true as const };
      },
    );
  };
}
