import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { Executor } from '../db/database.js';
import { isSameSecret } from '../lib/tokens.js';
import { AppError } from './errors.js';
import { authenticateOperatorSession } from './session.js';

/** Checks the operator's bearer token (ADMIN_API_TOKEN) in constant time. */
export function authenticateOperator(request: FastifyRequest, adminToken: string | undefined): void {
  if (!adminToken) {
    throw new AppError(
      'unauthorized',
      'Sign in as an operator, or set ADMIN_API_TOKEN and send it as a Bearer token',
    );
  }
  const header = request.headers.authorization ?? '';
  const token = header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : '';
  if (!isSameSecret(token, adminToken)) {
    throw new AppError(
      'unauthorized',
      'Missing or wrong operator token (Authorization: Bearer <ADMIN_API_TOKEN>)',
    );
  }
}

/** preHandler of admin routes: an operator's access token, or ADMIN_API_TOKEN for automation. */
export function requireOperator(db: Executor, config: Config) {
  return async (request: FastifyRequest): Promise<void> => {
    await authenticateOperatorSession(db, config, request, (r) =>
      authenticateOperator(r, config.ADMIN_API_TOKEN),
    );
  };
}
