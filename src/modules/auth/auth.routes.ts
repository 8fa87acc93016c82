import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Metrics } from '../../http/metrics.js';
import type { FailureLimiter } from '../../http/rate-limit.js';
import { authenticateOperatorSession, authenticateStaff } from '../../http/session.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import { type Audience, login, logout, refreshSession } from './auth.service.js';

const LoginBody = z.strictObject({
  email: z.string().min(3).max(254),
  password: z.string().min(1).max(200),
});
const RefreshBody = z.strictObject({ refreshToken: z.string().min(1).max(200) });
const TokenResponse = z.object({
  accessToken: z.string(),
  refreshToken: z.string(),
  expiresIn: z.int(),
  user: z.object({
    id: z.uuid(),
    email: z.string(),
    name: z.string().nullable(),
    role: z.string(),
    merchantId: z.uuid().nullable(),
    locale: z.string(),
  }),
});

/** Login limits: failed attempts per account and per IP address. */
export interface LoginLimiters {
  perAccount: FailureLimiter;
  perIp: FailureLimiter;
}

/**
 * Sign-in for one audience (portal: merchant staff; admin: operators): login, refresh (rotating,
 * reuse revokes the family), logout and the current user. Mounted under /api/v1/portal and
 * /api/v1/admin.
 */
export function authRoutes(deps: {
  db: Database;
  config: Config;
  metrics: Metrics;
  limiters: LoginLimiters;
  audience: Audience;
}): FastifyPluginAsyncZod {
  const { db, config, metrics, limiters, audience } = deps;
  const tags = [audience === 'portal' ? 'portal: auth' : 'admin: auth'];
  return async (app) => {
    app.post(
      '/auth/login',
      {
        schema: {
          tags,
          summary: 'Sign in with email and password',
          body: LoginBody,
          response: { 200: TokenResponse, 400: ErrorResponse, 401: ErrorResponse, 429: ErrorResponse },
        },
      },
      async (request) => {
        const account = `${audience}:${request.body.email.trim().toLowerCase()}`;
        const ip = request.ip;
        const wait = Math.max(
          await limiters.perAccount.blockedFor(account),
          await limiters.perIp.blockedFor(ip),
        );
        if (wait > 0) {
          metrics.portalLogins.inc({ result: 'rate_limited' });
          throw new AppError(
            'rate_limited',
            'Too many failed logins; try again later',
            { retryAfter: wait },
            {
              'Retry-After': String(wait),
            },
          );
        }
        try {
          const tokens = await login(db, config, {
            ...request.body,
            audience,
            ip,
            userAgent: request.headers['user-agent'],
          });
          metrics.portalLogins.inc({ result: 'success' });
          return tokens;
        } catch (error) {
          if (error instanceof AppError) {
            if (error.code === 'invalid_credentials') {
              await Promise.all([
                limiters.perAccount.recordFailure(account),
                limiters.perIp.recordFailure(ip),
              ]);
            }
            metrics.portalLogins.inc({
              result: error.code === 'invalid_credentials' ? 'failure' : error.code,
            });
          }
          throw error;
        }
      },
    );

    app.post(
      '/auth/refresh',
      {
        schema: {
          tags,
          summary: 'New token pair for a refresh token (each refresh token works once)',
          body: RefreshBody,
          response: { 200: TokenResponse, 400: ErrorResponse, 401: ErrorResponse },
        },
      },
      async (request) => {
        try {
          const tokens = await refreshSession(db, config, {
            refreshToken: request.body.refreshToken,
            audience,
            ip: request.ip,
            userAgent: request.headers['user-agent'],
          });
          metrics.portalRefreshes.inc({ result: 'success' });
          return tokens;
        } catch (error) {
          const result =
            error instanceof AppError && error.code === 'refresh_token_reused' ? 'reused' : 'failure';
          metrics.portalRefreshes.inc({ result });
          throw error;
        }
      },
    );

    app.post(
      '/auth/logout',
      { schema: { tags, summary: 'End the session of a refresh token', body: RefreshBody } },
      async (request, reply) => {
        await logout(db, request.body);
        return reply.status(204).send();
      },
    );

    app.get(
      '/me',
      { schema: { tags, summary: 'The signed-in user', security: [{ accessToken: [] }] } },
      async (request) => {
        const session =
          audience === 'portal'
            ? await authenticateStaff(db, config, request)
            : await authenticateOperatorSession(db, config, request, () => {
                throw new AppError('unauthorized', 'Sign in as an operator');
              }).then(() => request.sessionUser);
        if (!session) throw new AppError('unauthorized', 'Not signed in');
        const user = await db
          .selectFrom('portal_users as u')
          .leftJoin('merchants as m', 'm.id', 'u.merchant_id')
          .select([
            'u.id',
            'u.email',
            'u.name',
            'u.role',
            'u.locale',
            'u.merchant_id as merchantId',
            'm.name as merchantName',
          ])
          .where('u.id', '=', session.userId)
          .where('u.disabled_at', 'is', null)
          .executeTakeFirst();
        if (!user) throw new AppError('unauthorized', 'The account is no longer active');
        return user;
      },
    );
  };
}
