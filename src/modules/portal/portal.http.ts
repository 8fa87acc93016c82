import type { FastifyRequest, FastifySchema, RouteOptions } from 'fastify';
import { type RawBuilder, sql } from 'kysely';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { authenticateStaff, requirePermission, staffOf } from '../../http/session.js';
import type { Actor } from '../audit/audit.service.js';
import type { Permission } from '../auth/permissions.js';
import { ErrorResponse } from '../integration/integration.schema.js';

// What every portal route shares: sign-in checked against the database, per-route permissions,
// the audit actor, and the common schemas.

/** OpenAPI security of portal routes. */
export const portalSecurity = [{ accessToken: [] }];

/** The error answers portal routes document. */
export const portalErrors = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
};

/** One audit entry as the portal and the admin panel show it. */
export const AuditEntry = z.object({
  id: z.int(),
  actor: z.string(),
  actorUserId: z.uuid().nullable(),
  action: z.string(),
  entityType: z.string(),
  entityId: z.string().nullable(),
  before: z.unknown(),
  after: z.unknown(),
  ip: z.string().nullable(),
  createdAt: z.date(),
});

/** The empty answer of a DELETE (204). */
export const NoContent = z.void().describe('No content');

/** Path parameters naming one entity by id. */
export const IdParams = z.strictObject({ id: z.uuid() });

/** A calendar day, YYYY-MM-DD. */
export const Day = z.iso.date();

/**
 * onRequest hook of the portal plugin: a valid access token, and a user that still exists, is not
 * disabled and whose merchant is active. The role is re-read, so a demotion takes effect at once
 * (not when the 15-minute access token runs out).
 */
export async function authenticatePortalRequest(
  db: Executor,
  config: Config,
  request: FastifyRequest,
): Promise<void> {
  const account = await authenticateStaff(db, config, request);
  if (account.merchantStatus !== 'active')
    throw new AppError('merchant_suspended', 'The merchant is suspended');
}

/**
 * Route-level onRequest hook: 403 `forbidden` unless the signed-in user's role has `permission`.
 * The hook carries its permission, so documentPermission can publish it in the OpenAPI document.
 */
export function allow(permission: Permission) {
  const hook = async (request: FastifyRequest): Promise<void> => {
    requirePermission(request, permission);
  };
  return Object.assign(hook, { permission });
}

/**
 * onRoute hook of the portal plugin: a route guarded by allow() states its permission in the
 * OpenAPI document as `x-permission` (clients see what a role needs; tests walk the document).
 */
export function documentPermission(route: RouteOptions): void {
  const hooks = [route.onRequest ?? []].flat() as Array<{ permission?: Permission }>;
  const permission = hooks.find((hook) => hook.permission !== undefined)?.permission;
  if (permission && route.schema)
    route.schema = { ...route.schema, 'x-permission': permission } as FastifySchema;
}

/** The merchant the signed-in staff member works for: every query is scoped by it. */
export function merchantIdOf(request: FastifyRequest): string {
  return staffOf(request).merchantId;
}

/** Who a portal change is recorded as: the user's email and id, and the client's address. */
export function actorOf(request: FastifyRequest): Actor {
  const user = staffOf(request);
  return { userId: user.userId, label: user.email, ip: request.ip };
}

/** Who an admin change is recorded as: the operator, or the static ADMIN_API_TOKEN. */
export function operatorActorOf(request: FastifyRequest): Actor {
  const user = request.sessionUser;
  return user
    ? { userId: user.userId, label: user.email, ip: request.ip }
    : { userId: null, label: 'admin-api-token', ip: request.ip };
}

/** Escapes LIKE wildcards so user input matches literally. */
export function likePattern(input: string): string {
  return `%${input.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * `column` contains `input`, ignoring case in every alphabet: compared under the `loyalty_search`
 * collation (migration 0009), so it does not depend on the locale the database was created with.
 */
export function containsText(column: string, input: string): RawBuilder<boolean> {
  return sql<boolean>`(${sql.ref(column)} collate loyalty_search ilike ${likePattern(input)})`;
}
