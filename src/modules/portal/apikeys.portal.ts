import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { text } from '../../lib/text.js';
import { listApiKeys } from '../merchants/merchants.service.js';
import { issueApiKey, revokeMerchantApiKey } from './apikeys.service.js';
import {
  actorOf,
  allow,
  IdParams,
  merchantIdOf,
  NoContent,
  portalErrors,
  portalSecurity,
} from './portal.http.js';

const tags = ['portal: API keys'];
const ApiKey = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string(),
  createdAt: z.date(),
  revokedAt: z.date().nullable(),
});
const CreatedApiKey = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string(),
  key: z.string().describe('The key itself: shown this once, only its prefix afterwards'),
});

/** GET/POST /api-keys and DELETE /api-keys/:id (revoke). */
export function apiKeyRoutes(deps: { db: Database }): FastifyPluginAsyncZod {
  const { db } = deps;
  return async (app) => {
    app.get(
      '/api-keys',
      {
        onRequest: allow('apikeys:read'),
        schema: {
          tags,
          summary: 'API keys (prefixes only)',
          security: portalSecurity,
          response: { 200: z.array(ApiKey), ...portalErrors },
        },
      },
      async (request) => listApiKeys(db, { merchantId: merchantIdOf(request) }),
    );

    app.post(
      '/api-keys',
      {
        onRequest: allow('apikeys:write'),
        schema: {
          tags,
          summary: 'Issue an API key (the key is in this answer only)',
          security: portalSecurity,
          body: z.strictObject({ name: text(1, 100) }),
          response: { 201: CreatedApiKey, ...portalErrors },
        },
      },
      async (request, reply) => {
        const created = await issueApiKey(db, {
          merchantId: merchantIdOf(request),
          name: request.body.name,
          actor: actorOf(request),
        });
        return reply.status(201).send(created);
      },
    );

    app.delete(
      '/api-keys/:id',
      {
        onRequest: allow('apikeys:write'),
        schema: {
          tags,
          summary: 'Revoke an API key (takes effect on every replica at once)',
          security: portalSecurity,
          params: IdParams,
          response: { 204: NoContent, ...portalErrors },
        },
      },
      async (request, reply) => {
        await revokeMerchantApiKey(db, {
          merchantId: merchantIdOf(request),
          keyId: request.params.id,
          actor: actorOf(request),
        });
        return reply.status(204).send();
      },
    );
  };
}
