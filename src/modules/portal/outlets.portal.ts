import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { text } from '../../lib/text.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import {
  addOutlet,
  addPosMember,
  deleteOutlet,
  deletePosMember,
  listOutlets,
  listPosMembers,
  type PosMemberKind,
  updateOutlet,
  updatePosMember,
} from './outlets.service.js';
import {
  actorOf,
  allow,
  IdParams,
  merchantIdOf,
  NoContent,
  portalErrors,
  portalSecurity,
} from './portal.http.js';

const tags = ['portal: outlets'];
const Name = text(1, 200);
const Address = text(1, 500).nullable();
const CreateOutletBody = z.strictObject({ name: Name, address: Address.optional() });
const UpdateOutletBody = z.strictObject({ name: Name.optional(), address: Address.optional() });
const CreateMemberBody = z.strictObject({ name: Name, outletId: z.uuid().nullable().optional() });
const UpdateMemberBody = z.strictObject({ name: Name.optional(), outletId: z.uuid().nullable().optional() });

const Outlet = z.object({
  id: z.uuid(),
  name: z.string(),
  address: z.string().nullable(),
  createdAt: z.date(),
});
const Member = z.object({
  id: z.uuid(),
  name: z.string(),
  outletId: z.uuid().nullable(),
  createdAt: z.date(),
});
const deleteResponses = { 204: NoContent, ...portalErrors, 409: ErrorResponse };

/** Outlets, devices and cashiers: list (outlets:read), create/change/delete (outlets:write). */
export function outletRoutes(deps: { db: Database }): FastifyPluginAsyncZod {
  const { db } = deps;
  return async (app) => {
    app.get(
      '/outlets',
      {
        onRequest: allow('outlets:read'),
        schema: {
          tags,
          summary: 'Outlets',
          security: portalSecurity,
          response: { 200: z.object({ items: z.array(Outlet) }), ...portalErrors },
        },
      },
      async (request) => ({ items: await listOutlets(db, merchantIdOf(request)) }),
    );

    app.post(
      '/outlets',
      {
        onRequest: allow('outlets:write'),
        schema: {
          tags,
          summary: 'Add an outlet',
          security: portalSecurity,
          body: CreateOutletBody,
          response: { 201: Outlet, ...portalErrors },
        },
      },
      async (request, reply) => {
        const outlet = await addOutlet(db, {
          merchantId: merchantIdOf(request),
          ...request.body,
          actor: actorOf(request),
        });
        return reply.status(201).send(outlet);
      },
    );

    app.patch(
      '/outlets/:id',
      {
        onRequest: allow('outlets:write'),
        schema: {
          tags,
          summary: 'Rename an outlet or change its address',
          security: portalSecurity,
          params: IdParams,
          body: UpdateOutletBody,
          response: { 200: Outlet, ...portalErrors },
        },
      },
      async (request) =>
        updateOutlet(db, {
          merchantId: merchantIdOf(request),
          outletId: request.params.id,
          ...request.body,
          actor: actorOf(request),
        }),
    );

    app.delete(
      '/outlets/:id',
      {
        onRequest: allow('outlets:write'),
        schema: {
          tags,
          summary: 'Delete an outlet (409 when purchases name it)',
          security: portalSecurity,
          params: IdParams,
          response: deleteResponses,
        },
      },
      async (request, reply) => {
        await deleteOutlet(db, {
          merchantId: merchantIdOf(request),
          outletId: request.params.id,
          actor: actorOf(request),
        });
        return reply.status(204).send();
      },
    );

    registerMemberRoutes(app, db, 'device', '/devices');
    registerMemberRoutes(app, db, 'cashier', '/cashiers');
  };
}

type App = Parameters<FastifyPluginAsyncZod>[0];

function registerMemberRoutes(app: App, db: Database, kind: PosMemberKind, path: string): void {
  const label = kind === 'device' ? 'POS device' : 'cashier';
  app.get(
    path,
    {
      onRequest: allow('outlets:read'),
      schema: {
        tags,
        summary: `${label}s`,
        security: portalSecurity,
        response: { 200: z.object({ items: z.array(Member) }), ...portalErrors },
      },
    },
    async (request) => ({ items: await listPosMembers(db, { merchantId: merchantIdOf(request), kind }) }),
  );

  app.post(
    path,
    {
      onRequest: allow('outlets:write'),
      schema: {
        tags,
        summary: `Add a ${label}`,
        security: portalSecurity,
        body: CreateMemberBody,
        response: { 201: Member, ...portalErrors },
      },
    },
    async (request, reply) => {
      const member = await addPosMember(db, {
        merchantId: merchantIdOf(request),
        kind,
        ...request.body,
        actor: actorOf(request),
      });
      return reply.status(201).send(member);
    },
  );

  app.patch(
    `${path}/:id`,
    {
      onRequest: allow('outlets:write'),
      schema: {
        tags,
        summary: `Rename a ${label} or move it to another outlet (null detaches it)`,
        security: portalSecurity,
        params: IdParams,
        body: UpdateMemberBody,
        response: { 200: Member, ...portalErrors },
      },
    },
    async (request) =>
      updatePosMember(db, {
        merchantId: merchantIdOf(request),
        kind,
        id: request.params.id,
        ...request.body,
        actor: actorOf(request),
      }),
  );

  app.delete(
    `${path}/:id`,
    {
      onRequest: allow('outlets:write'),
      schema: {
        tags,
        summary: `Delete a ${label} (409 when purchases name it)`,
        security: portalSecurity,
        params: IdParams,
        response: deleteResponses,
      },
    },
    async (request, reply) => {
      await deletePosMember(db, {
        merchantId: merchantIdOf(request),
        kind,
        id: request.params.id,
        actor: actorOf(request),
      });
      return reply.status(204).send();
    },
  );
}
