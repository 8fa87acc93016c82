import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { Executor } from '../db/database.js';
import { type SessionUser, verifyAccessToken } from '../modules/auth/auth.service.js';
import { can, type Permission, type Role } from '../modules/auth/permissions.js';
import { AppError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    sessionUser: SessionUser | null;
  }
}

function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization ?? '';
  return header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() || null : null;
}

/** A signed-in account as the database has it now, with its merchant's status (null for operators). */
export type AccountSession = SessionUser & { merchantStatus: string | null };

/**
 * Verifies the access token and reads its account: a token proves who signed in, the database says
 * whether they still may. Disabling or deleting a user (or changing their role) takes effect on
 * their next request, not when the token expires.
 */
async function authenticateAccount(db: Executor, config: Config, token: string): Promise<AccountSession> {
  const claims = await verifyAccessToken(config, token);
  const row = await db
    .selectFrom('portal_users as u')
    .leftJoin('merchants as m', 'm.id', 'u.merchant_id')
    .select(['u.id', 'u.email', 'u.role', 'u.merchant_id', 'u.disabled_at', 'm.status'])
    .where('u.id', '=', claims.userId)
    .executeTakeFirst();
  if (!row || row.disabled_at) throw new AppError('unauthorized', 'The account is no longer active');
  return {
    userId: row.id,
    merchantId: row.merchant_id,
    role: row.role as Role,
    email: row.email,
    merchantStatus: row.status ?? null,
  };
}

/** The merchant staff member behind a portal request; 401 without a valid token of an enabled account. */
export async function authenticateStaff(
  db: Executor,
  config: Config,
  request: FastifyRequest,
): Promise<AccountSession> {
  const token = bearerToken(request);
  if (!token) throw new AppError('unauthorized', 'Missing access token: send Authorization: Bearer <token>');
  const account = await authenticateAccount(db, config, token);
  if (account.role === 'operator' || !account.merchantId) {
    throw new AppError('forbidden', 'Not a merchant account');
  }
  const { merchantStatus: _, ...user } = account;
  request.sessionUser = user;
  return account;
}

/** The signed-in staff member of a request after authenticateStaff ran (its preHandler guarantees it). */
export function staffOf(request: FastifyRequest): SessionUser & { merchantId: string } {
  const user = request.sessionUser;
  if (!user?.merchantId) throw new AppError('unauthorized', 'Not signed in');
  return { ...user, merchantId: user.merchantId };
}

/** Throws 403 unless the request's user has the permission. */
export function requirePermission(
  request: FastifyRequest,
  permission: Permission,
): SessionUser & { merchantId: string } {
  const user = staffOf(request);
  if (!can(user.role, permission)) {
    throw new AppError('forbidden', `Your role (${user.role}) may not do this (${permission})`, {
      permission,
    });
  }
  return user;
}

/**
 * The operator behind an admin request; accepts the access token of an enabled operator account
 * (checked against the database on every request) or ADMIN_API_TOKEN.
 */
export async function authenticateOperatorSession(
  db: Executor,
  config: Config,
  request: FastifyRequest,
  checkStaticToken: (request: FastifyRequest) => void,
): Promise<{ label: string; userId: string | null }> {
  const token = bearerToken(request);
  if (token && token.split('.').length === 3) {
    const { merchantStatus: _, ...user } = await authenticateAccount(db, config, token);
    if (user.role !== 'operator') throw new AppError('forbidden', 'Not an operator account');
    request.sessionUser = user;
    return { label: user.email, userId: user.userId };
  }
  checkStaticToken(request);
  return { label: 'admin-api-token', userId: null };
}
