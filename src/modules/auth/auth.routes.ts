import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Metrics } from '../../http/metrics.js';
import { authenticateOperatorSession, authenticateStaff } from '../../http/session.js';
import { DEFAULT_TIME_ZONE } from '../../lib/time-zone.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import { type Audience, login, logout, refreshSession } from './auth.service.js';
import { type LoginLimiters, withLoginLimits } from './login-limits.js';

const LoginBody = z.strictObject({
  email: z.string().min(3).max(254),
  password: z.string().min(1).max(200),
  merchantId: z
    .uuid()
    .optional()
    .describe(
      'Only when one email and password open accounts at several merchants (409 merchant_required lists them)',
    ),
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
          security: [],
          body: LoginBody,
          response: {
            200: TokenResponse,
            400: ErrorResponse,
            401: ErrorResponse,
            409: ErrorResponse,
            429: ErrorResponse,
          },
        },
      },
      async (request) => {
        const account = `${audience}:${request.body.email.trim().toLowerCase()}`;
        try {
          const tokens = await withLoginLimits(limiters, { account, ip: request.ip }, () =>
            login(db, config, {
              ...request.body,
              audience,
              ip: request.ip,
              userAgent: request.headers['user-agent'],
            }),
          );
          metrics.portalLogins.inc({ result: 'success' });
          return tokens;
        } catch (error) {
          if (error instanceof AppError) {
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
          security: [],
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
      {
        schema: {
          tags,
          summary: 'End the session of a refresh token',
          security: [],
          body: RefreshBody,
          response: { 204: z.void().describe('Signed out'), 400: ErrorResponse },
        },
      },
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
            'm.time_zone as timeZone',
          ])
          .where('u.id', '=', session.userId)
          .where('u.disabled_at', 'is', null)
          .executeTakeFirst();
        if (!user) throw new AppError('unauthorized', 'The account is no longer active');
        const { timeZone, ...fields } = user;
        // The merchant the staff member works for (null for operators), with its time zone.
        const merchant =
          user.merchantId === null
            ? null
            : { id: user.merchantId, name: user.merchantName, timeZone: timeZone ?? DEFAULT_TIME_ZONE };
        return { ...fields, merchant };
      },
    );
  };
}
