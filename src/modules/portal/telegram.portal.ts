import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import { MAX_AMOUNT_MINOR } from '../programme/programme.schema.js';
import {
  actorOf,
  allow,
  IdParams,
  merchantIdOf,
  NoContent,
  portalErrors,
  portalSecurity,
} from './portal.http.js';
import {
  connectBot,
  createStaffLink,
  getTelegramStatus,
  type NotifyBotInfo,
  removeStaffChat,
  updateTelegramSettings,
} from './telegram.service.js';

const tags = ['portal: telegram'];
const TelegramStatus = z.object({
  bot: z.object({ connected: z.boolean(), username: z.string().nullable() }).nullable(),
  notifyBot: z.object({ username: z.string().nullable(), configured: z.boolean() }),
  staffChats: z.array(
    z.object({
      id: z.uuid(),
      chatId: z.string(),
      telegramUsername: z.string().nullable(),
      linkedAt: z.date(),
    }),
  ),
  settings: z.object({ largePurchaseMinor: z.int().nullable() }),
});
const Settings = z.strictObject({
  largePurchaseMinor: z
    .int()
    .min(1)
    .max(MAX_AMOUNT_MINOR)
    .nullable()
    .describe('Staff chats hear of purchases with a total at or above this (minor units); null = never'),
});
const unavailable = { 503: ErrorResponse };

/** The Telegram page (telegram:write for everything: it shows who gets notifications). */
export function telegramPortalRoutes(deps: {
  db: Database;
  config: Config;
  notifyBot: NotifyBotInfo;
}): FastifyPluginAsyncZod {
  const { db, config, notifyBot } = deps;
  return async (app) => {
    app.get(
      '/telegram',
      {
        onRequest: allow('telegram:write'),
        schema: {
          tags,
          summary: 'Customer bot, notify bot, linked staff chats and settings',
          security: portalSecurity,
          response: { 200: TelegramStatus, ...portalErrors },
        },
      },
      async (request) => getTelegramStatus(db, { merchantId: merchantIdOf(request), notifyBot }),
    );

    app.post(
      '/telegram/bot',
      {
        onRequest: allow('telegram:write'),
        schema: {
          tags,
          summary:
            "Connect the merchant's customer bot by its token (the webhook is set through the Bot API)",
          security: portalSecurity,
          body: z.strictObject({ token: z.string().min(1).max(200) }),
          response: {
            200: z.object({ botId: z.int(), username: z.string(), webhookUrl: z.string().nullable() }),
            ...portalErrors,
            ...unavailable,
          },
        },
      },
      async (request) =>
        connectBot(db, {
          merchantId: merchantIdOf(request),
          token: request.body.token,
          config,
          actor: actorOf(request),
        }),
    );

    app.post(
      '/telegram/staff-links',
      {
        onRequest: allow('telegram:write'),
        schema: {
          tags,
          summary: 'A one-time link that connects a staff member to the notify bot',
          security: portalSecurity,
          response: {
            201: z.object({ token: z.string(), expiresAt: z.date(), deepLink: z.string().nullable() }),
            ...portalErrors,
          },
        },
      },
      async (request, reply) => {
        const link = await createStaffLink(db, {
          merchantId: merchantIdOf(request),
          actor: actorOf(request),
          notifyBot,
        });
        return reply.status(201).send(link);
      },
    );

    app.delete(
      '/telegram/staff-chats/:id',
      {
        onRequest: allow('telegram:write'),
        schema: {
          tags,
          summary: 'Unlink a staff chat',
          security: portalSecurity,
          params: IdParams,
          response: { 204: NoContent, ...portalErrors },
        },
      },
      async (request, reply) => {
        await removeStaffChat(db, {
          merchantId: merchantIdOf(request),
          id: request.params.id,
          actor: actorOf(request),
        });
        return reply.status(204).send();
      },
    );

    app.put(
      '/telegram/settings',
      {
        onRequest: allow('telegram:write'),
        schema: {
          tags,
          summary: 'Staff notification settings',
          security: portalSecurity,
          body: Settings,
          response: { 200: z.object({ largePurchaseMinor: z.int().nullable() }), ...portalErrors },
        },
      },
      async (request) =>
        updateTelegramSettings(db, {
          merchantId: merchantIdOf(request),
          largePurchaseMinor: request.body.largePurchaseMinor,
          actor: actorOf(request),
        }),
    );
  };
}
