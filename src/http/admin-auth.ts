import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { AppError } from './errors.js';

/** Checks the operator's bearer token (ADMIN_API_TOKEN) in constant time. */
export function authenticateOperator(request: FastifyRequest, adminToken: string | undefined): void {
  if (!adminToken) throw new AppError('unauthorized', 'The admin API is disabled: set ADMIN_API_TOKEN');
  const header = request.headers.authorization ?? '';
  const token = header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : '';
  const a = Buffer.from(token);
  const b = Buffer.from(adminToken);
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new AppError(
      'unauthorized',
      'Missing or wrong operator token (Authorization: Bearer <ADMIN_API_TOKEN>)',
    );
  }
}
