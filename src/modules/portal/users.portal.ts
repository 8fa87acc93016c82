import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { staffOf } from '../../http/session.js';
import { text } from '../../lib/text.js';
import { listAudit } from '../audit/audit.service.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import {
  AuditEntry,
  actorOf,
  allow,
  IdParams,
  merchantIdOf,
  NoContent,
  portalErrors,
  portalSecurity,
} from './portal.http.js';
import {
  addStaffUser,
  changeStaffUser,
  listStaffUsers,
  removeStaffUser,
  type StaffManager,
} from './users.service.js';

const StaffRole = z.enum(['owner', 'admin', 'manager', 'cashier']);
const CreateUserBody = z.strictObject({
  email: z.email().max(254),
  password: z.string().min(8).max(200),
  role: StaffRole,
  name: text(1, 200).optional(),
});
const UpdateUserBody = z.strictObject({
  role: StaffRole.optional(),
  name: text(1, 200).nullable().optional(),
  disabled: z.boolean().optional(),
});
const User = z.object({
  id: z.uuid(),
  email: z.string(),
  name: z.string().nullable(),
  role: z.string(),
  locale: z.string(),
  disabled: z.boolean(),
  lastLoginAt: z.date().nullable(),
  createdAt: z.date(),
});
const AuditQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  before: z.coerce.number().int().min(1).optional().describe('Entries with a smaller id (the next page)'),
});

function managerOf(request: FastifyRequest): StaffManager {
  const user = staffOf(request);
  return { actor: actorOf(request), userId: user.userId, role: user.role };
}

/** Staff accounts (users:read / users:write) and the merchant's audit log (audit:read). */
export function userRoutes(deps: { db: Database }): FastifyPluginAsyncZod {
  const { db } = deps;
  const conflict = { 409: ErrorResponse };
  return async (app) => {
    app.get(
      '/users',
      {
        onRequest: allow('users:read'),
        schema: {
          tags: ['portal: users'],
          summary: 'Staff accounts',
          security: portalSecurity,
          response: { 200: z.object({ items: z.array(User) }), ...portalErrors },
        },
      },
      async (request) => ({ items: await listStaffUsers(db, merchantIdOf(request)) }),
    );

    app.post(
      '/users',
      {
        onRequest: allow('users:write'),
        schema: {
          tags: ['portal: users'],
          summary: 'Add a staff account (admins cannot create owners)',
          security: portalSecurity,
          body: CreateUserBody,
          response: { 201: User, ...portalErrors, ...conflict },
        },
      },
      async (request, reply) => {
        const user = await addStaffUser(db, {
          by: managerOf(request),
          merchantId: merchantIdOf(request),
          ...request.body,
        });
        return reply.status(201).send(user);
      },
    );

    app.patch(
      '/users/:id',
      {
        onRequest: allow('users:write'),
        schema: {
          tags: ['portal: users'],
          summary: 'Change role, name or disabled (the last owner stays: 409)',
          security: portalSecurity,
          params: IdParams,
          body: UpdateUserBody,
          response: { 200: User, ...portalErrors, ...conflict },
        },
      },
      async (request) =>
        changeStaffUser(db, {
          by: managerOf(request),
          merchantId: merchantIdOf(request),
          userId: request.params.id,
          ...request.body,
        }),
    );

    app.delete(
      '/users/:id',
      {
        onRequest: allow('users:write'),
        schema: {
          tags: ['portal: users'],
          summary: 'Remove a staff account (not yourself, not the last owner: 409)',
          security: portalSecurity,
          params: IdParams,
          response: { 204: NoContent, ...portalErrors, ...conflict },
        },
      },
      async (request, reply) => {
        await removeStaffUser(db, {
          by: managerOf(request),
          merchantId: merchantIdOf(request),
          userId: request.params.id,
        });
        return reply.status(204).send();
      },
    );

    app.get(
      '/audit-log',
      {
        onRequest: allow('audit:read'),
        schema: {
          tags: ['portal: audit'],
          summary: 'Every change made in the portal, newest first',
          security: portalSecurity,
          querystring: AuditQuery,
          response: { 200: z.object({ items: z.array(AuditEntry) }), ...portalErrors },
        },
      },
      async (request) => ({
        items: await listAudit(db, { merchantId: merchantIdOf(request), ...request.query }),
      }),
    );
  };
}
