import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { type SessionUser, verifyAccessToken } from '../modules/auth/auth.service.js';
import { can, type Permission } from '../modules/auth/permissions.js';
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

/** The merchant staff member behind a portal request; 401 without a valid access token. */
export async function authenticateStaff(config: Config, request: FastifyRequest): Promise<SessionUser> {
  const token = bearerToken(request);
  if (!token) throw new AppError('unauthorized', 'Missing access token: send Authorization: Bearer <token>');
  const user = await verifyAccessToken(config, token);
  if (user.role === 'operator' || !user.merchantId) throw new AppError('forbidden', 'Not a merchant account');
  request.sessionUser = user;
  return user;
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

/** The operator behind an admin request; accepts an operator access token or ADMIN_API_TOKEN. */
export async function authenticateOperatorSession(
  config: Config,
  request: FastifyRequest,
  checkStaticToken: (request: FastifyRequest) => void,
): Promise<{ label: string; userId: string | null }> {
  const token = bearerToken(request);
  if (token && token.split('.').length === 3) {
    const user = await verifyAccessToken(config, token);
    if (user.role !== 'operator') throw new AppError('forbidden', 'Not an operator account');
    request.sessionUser = user;
    return { label: user.email, userId: user.userId };
  }
  checkStaticToken(request);
  return { label: 'admin-api-token', userId: null };
}
