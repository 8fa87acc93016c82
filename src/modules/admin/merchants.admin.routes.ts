import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { requireOperator } from '../../http/admin-auth.js';
import { text } from '../../lib/text.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import { operatorActorOf } from '../portal/portal.http.js';
import { ProgrammeRules } from '../programme/programme.schema.js';
import {
  changeMerchant,
  createMerchantWithOwner,
  getMerchantDetail,
  listMerchants,
} from './merchants.admin.js';

const tags = ['admin: merchants'];
const security = [{ operatorToken: [] }];
const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse };
const MerchantParams = z.strictObject({ id: z.uuid() });
const ListQuery = z.strictObject({
  q: z.string().max(200).optional().describe('Part of the name, or the id'),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
});
const CreateBody = z.strictObject({
  name: text(1, 200),
  rules: ProgrammeRules.optional().describe('Default: 5% earn, up to 50% payable by points'),
  owner: z.strictObject({
    email: z.email().max(254),
    password: z.string().min(8).max(200),
    name: text(1, 200).optional(),
  }),
});
const UpdateBody = z
  .strictObject({ status: z.enum(['active', 'suspended']).optional(), name: text(1, 200).optional() })
  .refine((b) => b.status !== undefined || b.name !== undefined, {
    path: ['status'],
    message: 'give status and/or name',
  });

const Usage = z.object({
  customers: z.int(),
  purchases30d: z.int(),
  revenue30d: z.int(),
  apiKeys: z.int(),
  webhookEndpoints: z.int(),
});
const MerchantItem = z.object({
  id: z.uuid(),
  name: z.string(),
  status: z.string(),
  createdAt: z.date(),
  usage: Usage,
});
const MerchantDetail = MerchantItem.extend({
  rules: z.unknown(),
  updatedAt: z.date(),
  outboxPausedAt: z.date().nullable(),
  telegramBotUsername: z.string().nullable(),
  users: z.array(
    z.object({
      id: z.uuid(),
      email: z.string(),
      name: z.string().nullable(),
      role: z.string(),
      disabled: z.boolean(),
      lastLoginAt: z.date().nullable(),
    }),
  ),
});
const Created = z.object({
  merchant: z.object({
    id: z.uuid(),
    name: z.string(),
    status: z.string(),
    createdAt: z.date(),
    rules: ProgrammeRules,
  }),
  owner: z.object({ id: z.uuid(), email: z.string(), role: z.string() }),
});

/** Merchants in the admin panel: list with usage, create with an owner, show, rename/suspend. */
export function merchantAdminRoutes(deps: { db: Database; config: Config }): FastifyPluginAsyncZod {
  const { db } = deps;
  return async (app) => {
    app.addHook('onRequest', requireOperator(deps.db, deps.config));

    app.get(
      '/merchants',
      {
        schema: {
          tags,
          security,
          summary: 'Merchants with their usage',
          querystring: ListQuery,
          response: { 200: z.object({ items: z.array(MerchantItem), total: z.int() }), ...errors },
        },
      },
      async (request) => listMerchants(db, request.query),
    );

    app.post(
      '/merchants',
      {
        schema: {
          tags,
          security,
          summary: 'Create a merchant and its owner account (who can then sign in to the portal)',
          body: CreateBody,
          response: { 201: Created, ...errors, 409: ErrorResponse },
        },
      },
      async (request, reply) => {
        const created = await createMerchantWithOwner(db, {
          ...request.body,
          actor: operatorActorOf(request),
        });
        return reply.status(201).send(created);
      },
    );

    app.get(
      '/merchants/:id',
      {
        schema: {
          tags,
          security,
          summary: 'A merchant with its programme, usage and staff accounts',
          params: MerchantParams,
          response: { 200: MerchantDetail, ...errors },
        },
      },
      async (request) => getMerchantDetail(db, request.params.id),
    );

    app.patch(
      '/merchants/:id',
      {
        schema: {
          tags,
          security,
          summary: "Rename, suspend or reactivate (a suspended merchant's API keys get 403 at once)",
          params: MerchantParams,
          body: UpdateBody,
          response: { 200: MerchantDetail, ...errors },
        },
      },
      async (request) => {
        await changeMerchant(db, {
          merchantId: request.params.id,
          ...request.body,
          actor: operatorActorOf(request),
        });
        return getMerchantDetail(db, request.params.id);
      },
    );
  };
}
