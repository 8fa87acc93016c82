import type { FastifyInstance } from 'fastify';
import type { SwitchBoard } from '../modules/admin/switches.service.js';
import { errorBody } from './errors.js';

/** Routes that answer in every mode: operations endpoints (the runbook's health/metrics). */
const OPS_PATHS = new Set(['/health', '/live', '/ready', '/metrics']);
/**
 * While a mode was switched on at run time (not forced by the environment), operators must still be
 * able to sign in to the admin panel and switch it off again: its pages, assets, sign-in and the
 * switch endpoint stay reachable. A mode forced by MAINTENANCE_MODE / READ_ONLY_MODE blocks them too.
 */
function isOperatorPath(path: string): boolean {
  return (
    path === '/admin' ||
    path.startsWith('/admin/') ||
    path.startsWith('/assets/') ||
    path.startsWith('/api/v1/admin/auth/') ||
    path === '/api/v1/admin/me' ||
    path === '/api/v1/admin/switches'
  );
}
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * MAINTENANCE_MODE: 503 `maintenance` with Retry-After on every route but the operations ones.
 * READ_ONLY_MODE: only GET, HEAD and OPTIONS pass; the rest get 503 `read_only`.
 */
export function registerSafetySwitches(app: FastifyInstance, switches: SwitchBoard): void {
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (OPS_PATHS.has(path)) return;
    const state = switches.describe();
    const isOperator = isOperatorPath(path);
    if (switches.isMaintenance && !(isOperator && !state.maintenance.forcedByEnv)) {
      return reply
        .status(503)
        .header('Retry-After', '120')
        .send(errorBody('maintenance', 'The service is under maintenance, try again later'));
    }
    if (
      switches.isReadOnly &&
      !SAFE_METHODS.has(request.method) &&
      !(isOperator && !state.readOnly.forcedByEnv)
    ) {
      return reply
        .status(503)
        .header('Retry-After', '120')
        .send(
          errorBody(
            'read_only',
            'The service is read-only right now: only GET, HEAD and OPTIONS are accepted',
          ),
        );
    }
  });
}
