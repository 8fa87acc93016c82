import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { requireOperator } from '../../http/admin-auth.js';
import { enqueueEvent } from '../../jobs/outbox.queue.js';
import { SecretBox } from '../../lib/crypto.js';
import { writeAudit } from '../audit/audit.service.js';
import { operatorActorOf } from '../portal/portal.http.js';
import { CreateWebhookBody, UpdateWebhookBody } from './webhooks.schema.js';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  listWebhookEndpoints,
  rotateWebhookSecret,
  updateWebhookEndpoint,
} from './webhooks.service.js';

const tags = ['admin: webhooks'];
const security = [{ operatorToken: [] }];
const MerchantParams = z.strictObject({ merchantId: z.uuid() });
const EndpointParams = z.strictObject({ merchantId: z.uuid(), endpointId: z.uuid() });

/** Webhook endpoints of a merchant, managed by operators (the portal gets the same under its auth). */
export function webhookAdminRoutes(deps: {
  db: Database;
  config: Config;
  allowPrivateNetworks: boolean;
}): FastifyPluginAsyncZod {
  return async (app) => {
    app.addHook('preHandler', requireOperator(deps.db, deps.config));
    const { db, allowPrivateNetworks } = deps;
    const box = new SecretBox(deps.config.APP_ENCRYPTION_KEY);

    app.get(
      '/merchants/:merchantId/webhooks',
      {
        schema: {
          tags,
          security,
          summary: 'List endpoints (secrets are never shown again)',
          params: MerchantParams,
        },
      },
      async (request) => ({ items: await listWebhookEndpoints(db, request.params) }),
    );

    app.post(
      '/merchants/:merchantId/webhooks',
      {
        schema: {
          tags,
          security,
          summary: 'Add an endpoint; the secret is shown once',
          params: MerchantParams,
          body: CreateWebhookBody,
        },
      },
      async (request, reply) => {
        const created = await createWebhookEndpoint(db, {
          ...request.params,
          ...request.body,
          allowPrivateNetworks,
          box,
        });
        // Operators' actions go to the platform's audit log; secrets never do.
        await writeAudit(db, {
          actor: operatorActorOf(request),
          action: 'webhook.create',
          entityType: 'webhook_endpoint',
          entityId: created.id,
          after: { merchantId: request.params.merchantId, ...request.body },
        });
        return reply.status(201).send(created);
      },
    );

    app.patch(
      '/merchants/:merchantId/webhooks/:endpointId',
      {
        schema: {
          tags,
          security,
          summary: 'Change url, event types, enabled',
          params: EndpointParams,
          body: UpdateWebhookBody,
        },
      },
      async (request) => {
        const before = (await listWebhookEndpoints(db, { merchantId: request.params.merchantId })).find(
          (e) => e.id === request.params.endpointId,
        );
        const after = await updateWebhookEndpoint(db, {
          ...request.params,
          ...request.body,
          allowPrivateNetworks,
        });
        await writeAudit(db, {
          actor: operatorActorOf(request),
          action: 'webhook.update',
          entityType: 'webhook_endpoint',
          entityId: request.params.endpointId,
          before: before ? { merchantId: request.params.merchantId, ...before } : undefined,
          after: { merchantId: request.params.merchantId, ...after },
        });
        return after;
      },
    );

    app.delete(
      '/merchants/:merchantId/webhooks/:endpointId',
      { schema: { tags, security, summary: 'Delete an endpoint', params: EndpointParams } },
      async (request, reply) => {
        await deleteWebhookEndpoint(db, request.params);
        await writeAudit(db, {
          actor: operatorActorOf(request),
          action: 'webhook.delete',
          entityType: 'webhook_endpoint',
          entityId: request.params.endpointId,
          before: { merchantId: request.params.merchantId },
        });
        return reply.status(204).send();
      },
    );

    app.post(
      '/merchants/:merchantId/webhooks/:endpointId/rotate-secret',
      {
        schema: {
          tags,
          security,
          summary: 'New secret; the old one keeps signing too during the overlap (default 24 h)',
          params: EndpointParams,
          body: z
            .strictObject({
              overlapSeconds: z
                .int()
                .min(0)
                .max(7 * 86_400)
                .optional(),
            })
            .optional(),
        },
      },
      async (request) => {
        const rotated = await rotateWebhookSecret(db, {
          ...request.params,
          overlapSeconds: request.body?.overlapSeconds,
          box,
        });
        await writeAudit(db, {
          actor: operatorActorOf(request),
          action: 'webhook.rotate_secret',
          entityType: 'webhook_endpoint',
          entityId: request.params.endpointId,
          after: { merchantId: request.params.merchantId, secretPrefix: rotated.secret.slice(0, 10) },
        });
        return rotated;
      },
    );

    app.post(
      '/merchants/:merchantId/webhooks/:endpointId/test',
      {
        schema: {
          tags,
          security,
          summary: 'Send a webhook.test event to this endpoint',
          params: EndpointParams,
        },
      },
      async (request, reply) => {
        const endpoints = await listWebhookEndpoints(db, { merchantId: request.params.merchantId });
        if (!endpoints.some((e) => e.id === request.params.endpointId)) {
          return reply
            .status(404)
            .send({ error: { code: 'not_found', message: 'Webhook endpoint not found' } });
        }
        const eventId = await enqueueEvent(db, {
          merchantId: request.params.merchantId,
          type: 'webhook.test',
          payload: { message: 'Test event from the loyalty platform', occurredAt: new Date().toISOString() },
          target: 'webhook',
          endpointId: request.params.endpointId,
        });
        await writeAudit(db, {
          actor: operatorActorOf(request),
          action: 'webhook.test',
          entityType: 'webhook_endpoint',
          entityId: request.params.endpointId,
          after: { merchantId: request.params.merchantId, eventId },
        });
        return reply.status(202).send({ eventId });
      },
    );
  };
}
