import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import type { SecretBox } from '../../lib/crypto.js';
import { CreateWebhookBody, UpdateWebhookBody } from '../webhooks/webhooks.schema.js';
import { listWebhookEndpoints } from '../webhooks/webhooks.service.js';
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
  addWebhookEndpoint,
  changeWebhookEndpoint,
  listDeliveries,
  removeWebhookEndpoint,
  replayEndpointDeliveries,
  rotateEndpointSecret,
  sendTestEvent,
} from './webhooks.service.js';

const tags = ['portal: webhooks'];
const RotateBody = z
  .strictObject({
    overlapSeconds: z
      .int()
      .min(0)
      .max(7 * 86_400)
      .optional()
      .describe('How long the old secret keeps verifying (default 24 h)'),
  })
  .nullish();
const DeliveriesQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(200).default(50) });
const ReplayBody = z.strictObject({
  since: z.iso.datetime({ offset: true }).describe('Replay deliveries that went dead at or after this time'),
});

const Endpoint = z.object({
  id: z.uuid(),
  url: z.string(),
  description: z.string().nullable(),
  eventTypes: z.array(z.string()),
  enabled: z.boolean(),
  disabledReason: z.string().nullable(),
  secretPrefix: z.string(),
  previousSecretExpiresAt: z.date().nullable(),
  createdAt: z.date(),
  updatedAt: z.date(),
});
const Delivery = z.object({
  eventId: z.int(),
  type: z.string(),
  status: z.string(),
  attempts: z.int(),
  lastError: z.string().nullable(),
  createdAt: z.date(),
  deliveredAt: z.date().nullable(),
  deadAt: z.date().nullable(),
  nextAttemptAt: z.date(),
  attemptLog: z.array(
    z.object({
      attempt: z.int(),
      startedAt: z.date(),
      durationMs: z.int(),
      statusCode: z.int().nullable(),
      result: z.string(),
      error: z.string().nullable(),
      responseExcerpt: z.string().nullable(),
    }),
  ),
});

/** The merchant's webhook endpoints (webhooks:read / webhooks:write). */
export function webhookRoutes(deps: {
  db: Database;
  allowPrivateNetworks: boolean;
  box: SecretBox;
}): FastifyPluginAsyncZod {
  const { db, allowPrivateNetworks, box } = deps;
  const audit = (request: Parameters<typeof actorOf>[0]) => ({
    merchantId: merchantIdOf(request),
    actor: actorOf(request),
  });
  return async (app) => {
    app.get(
      '/webhooks',
      {
        onRequest: allow('webhooks:read'),
        schema: {
          tags,
          summary: 'Endpoints (secrets are never shown again, only their prefix)',
          security: portalSecurity,
          response: { 200: z.object({ items: z.array(Endpoint) }), ...portalErrors },
        },
      },
      async (request) => ({ items: await listWebhookEndpoints(db, { merchantId: merchantIdOf(request) }) }),
    );

    app.post(
      '/webhooks',
      {
        onRequest: allow('webhooks:write'),
        schema: {
          tags,
          summary: 'Add an endpoint; the signing secret is in this answer only',
          security: portalSecurity,
          body: CreateWebhookBody,
          response: { 201: z.object({ id: z.uuid(), secret: z.string() }), ...portalErrors },
        },
      },
      async (request, reply) => {
        const created = await addWebhookEndpoint(db, {
          ...audit(request),
          ...request.body,
          allowPrivateNetworks,
          box,
        });
        return reply.status(201).send(created);
      },
    );

    app.patch(
      '/webhooks/:id',
      {
        onRequest: allow('webhooks:write'),
        schema: {
          tags,
          summary: 'Change url, event types, description, enabled',
          security: portalSecurity,
          params: IdParams,
          body: UpdateWebhookBody,
          response: { 200: Endpoint, ...portalErrors },
        },
      },
      async (request) =>
        changeWebhookEndpoint(db, {
          ...audit(request),
          endpointId: request.params.id,
          ...request.body,
          allowPrivateNetworks,
        }),
    );

    app.delete(
      '/webhooks/:id',
      {
        onRequest: allow('webhooks:write'),
        schema: {
          tags,
          summary: 'Delete an endpoint',
          security: portalSecurity,
          params: IdParams,
          response: { 204: NoContent, ...portalErrors },
        },
      },
      async (request, reply) => {
        await removeWebhookEndpoint(db, { ...audit(request), endpointId: request.params.id });
        return reply.status(204).send();
      },
    );

    app.post(
      '/webhooks/:id/rotate-secret',
      {
        onRequest: allow('webhooks:write'),
        schema: {
          tags,
          summary: 'New signing secret; the old one keeps signing too during the overlap',
          security: portalSecurity,
          params: IdParams,
          body: RotateBody,
          response: { 200: z.object({ secret: z.string() }), ...portalErrors },
        },
      },
      async (request) =>
        rotateEndpointSecret(db, {
          ...audit(request),
          endpointId: request.params.id,
          overlapSeconds: request.body?.overlapSeconds,
          box,
        }),
    );

    app.post(
      '/webhooks/:id/test',
      {
        onRequest: allow('webhooks:write'),
        schema: {
          tags,
          summary: 'Send a webhook.test event to this endpoint',
          security: portalSecurity,
          params: IdParams,
          response: { 202: z.object({ eventId: z.int() }), ...portalErrors },
        },
      },
      async (request, reply) => {
        const eventId = await sendTestEvent(db, { ...audit(request), endpointId: request.params.id });
        return reply.status(202).send({ eventId });
      },
    );

    app.get(
      '/webhooks/:id/deliveries',
      {
        onRequest: allow('webhooks:read'),
        schema: {
          tags,
          summary: 'Latest deliveries to this endpoint with every attempt',
          security: portalSecurity,
          params: IdParams,
          querystring: DeliveriesQuery,
          response: { 200: z.object({ items: z.array(Delivery) }), ...portalErrors },
        },
      },
      async (request) => ({
        items: await listDeliveries(db, {
          merchantId: merchantIdOf(request),
          endpointId: request.params.id,
          limit: request.query.limit,
        }),
      }),
    );

    app.post(
      '/webhooks/:id/replay',
      {
        onRequest: allow('webhooks:write'),
        schema: {
          tags,
          summary: 'Re-queue the dead deliveries to this endpoint since a time',
          security: portalSecurity,
          params: IdParams,
          body: ReplayBody,
          response: { 200: z.object({ replayed: z.int() }), ...portalErrors },
        },
      },
      async (request) => ({
        replayed: await replayEndpointDeliveries(db, {
          ...audit(request),
          endpointId: request.params.id,
          since: new Date(request.body.since),
        }),
      }),
    );
  };
}
