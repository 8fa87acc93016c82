import type { FastifyInstance } from 'fastify';
import type { SwitchBoard } from '../modules/admin/switches.service.js';
import { errorBody } from './errors.js';

/** Routes that answer in every mode: operations endpoints (the runbook's health/metrics). */
const OPS_PATHS = new Set(['/health', '/live', '/ready', '/metrics']);
/**
 * In either mode operators must still be able to sign in to the admin panel, read the switches
 * (including `forcedByEnv`, which says why a mode cannot be switched off) and flip them: its pages,
 * assets, sign-in and the switch endpoint stay reachable, whether the mode was switched on at run
 * time or forced by MAINTENANCE_MODE / READ_ONLY_MODE. The rest of the admin API is blocked like
 * everything else.
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

/** Why a request was turned away with 503 by a mode (null: it was not). */
export type BlockedBy = 'maintenance' | 'read_only' | null;

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Set when maintenance or read-only mode answered 503: these are counted apart
     * (`http_requests_total{reason=...}`) and are not 5xx incidents.
     */
    blockedBy: BlockedBy;
  }
}

/**
 * MAINTENANCE_MODE: 503 `maintenance` with Retry-After on every route but the operations ones.
 * READ_ONLY_MODE: only GET, HEAD and OPTIONS pass; the rest get 503 `read_only`.
 */
export function registerSafetySwitches(app: FastifyInstance, switches: SwitchBoard): void {
  app.decorateRequest('blockedBy', null);
  // A callback hook, and the switches read before the path: with both modes off (every request
  // of a normal day) it costs two property reads.
  app.addHook('onRequest', (request, reply, done) => {
    const blockedBy = switches.isMaintenance
      ? 'maintenance'
      : switches.isReadOnly && !SAFE_METHODS.has(request.method)
        ? 'read_only'
        : null;
    const path = blockedBy ? (request.url.split('?')[0] ?? '') : '';
    if (!blockedBy || OPS_PATHS.has(path) || isOperatorPath(path)) {
      done();
      return;
    }
    request.blockedBy = blockedBy;
    const message =
      blockedBy === 'maintenance'
        ? 'The service is under maintenance, try again later'
        : 'The service is read-only right now: only GET, HEAD and OPTIONS are accepted';
    // Answered here: done is not called.
    reply.status(503).header('Retry-After', '120').send(errorBody(blockedBy, message));
  });
}
