import type { IncomingMessage, ServerResponse } from 'node:http';
import fastifyHelmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import helmet from 'helmet';

// Security headers come from helmet (the maintained set: nosniff, frame and referrer policies, CSP,
// cross-origin policies), not from hand-written lists. Routes that need other values (the web
// surfaces) give helmet options of their own.

/** Strict-Transport-Security for clients that came over https: a year, subdomains included. */
const HSTS = { maxAge: 31_536_000, includeSubDomains: true };

/** The Content-Security-Policy of everything but the web surfaces: this origin only, never framed. */
export const BASE_CSP_DIRECTIVES = {
  defaultSrc: ["'self'"],
  imgSrc: ["'self'", 'data:', 'blob:'],
  styleSrc: ["'self'", "'unsafe-inline'"],
  scriptSrc: ["'self'"],
  connectSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  // Plain-http installs (development, a LAN) must keep loading their own assets.
  upgradeInsecureRequests: null,
};

/** A client's X-Request-Id is kept only when it is a short token; anything else gets a fresh id. */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The request id of a request: the client's X-Request-Id when it is a short token, a new UUID otherwise. */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : crypto.randomUUID();
}

/**
 * Registers helmet for every response, HSTS only when the client came over https (the socket, or
 * X-Forwarded-Proto from a proxy TRUST_PROXY believes), and `Cache-Control: no-store` on the API:
 * its answers carry tokens, codes and personal data that no browser or proxy may keep.
 */
export async function registerSecurityHeaders(app: FastifyInstance): Promise<void> {
  const options = {
    contentSecurityPolicy: { directives: BASE_CSP_DIRECTIVES },
    strictTransportSecurity: false,
    referrerPolicy: { policy: 'same-origin' as const },
  };
  // @fastify/helmet builds helmet's middleware (the CSP directives parsed again) for every request,
  // and helmet's middleware builds each header again for every response: both showed in the API's
  // CPU profile per POS commit. Routes without helmet options of their own (the API: every POS call)
  // get the same headers every time, so helmet computes them once here and they are copied onto
  // each response; the plugin serves the routes that have options (the web surfaces) and
  // `reply.helmet`. They go on the reply, not the raw response: with no header set on the raw
  // response, Node writes the reply's headers in one pass instead of setting each one again.
  await app.register(fastifyHelmet, { ...options, global: false });
  const overHttp = headersOf(helmet(options));
  const overHttps = headersOf(helmet({ ...options, strictTransportSecurity: HSTS }));
  app.addHook('onRequest', (request, reply, done) => {
    const isHttps = request.protocol === 'https';
    // The plugin copies a route's own helmet options into its config.
    if ((request.routeOptions.config as { helmet?: unknown }).helmet === undefined) {
      for (const [name, value] of isHttps ? overHttps : overHttp) reply.header(name, value);
    } else if (isHttps) reply.helmet({ strictTransportSecurity: HSTS });
    if (request.url.startsWith('/api/')) reply.header('cache-control', 'no-store');
    done();
  });
}

/**
 * The headers a helmet middleware sets, computed once by running it against a response that only
 * records them (with fixed options, as here, helmet sets the same headers on every response).
 */
export function headersOf(middleware: ReturnType<typeof helmet>): [string, string][] {
  const headers = new Map<string, string>();
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.set(name.toLowerCase(), String(value));
    },
    removeHeader(name: string) {
      headers.delete(name.toLowerCase());
    },
  };
  middleware({} as IncomingMessage, recorder as unknown as ServerResponse, noop);
  return [...headers];
}

function noop(): void {}
