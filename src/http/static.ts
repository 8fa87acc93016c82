import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { BASE_CSP_DIRECTIVES } from './security-headers.js';

// Serves the web front end (one SPA: merchant portal, admin panel, Telegram Mini App) from web/dist,
// which `npm run build:web` produces. Only /assets/* and the three surfaces are routed here, so the
// API, /docs, the ops endpoints and the Telegram webhooks are never shadowed.

/** Where `npm run build:web` writes the bundle (same path from src/ under tsx and from dist/). */
export const DEFAULT_WEB_DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));

/** The SPA's surfaces: each path and everything under it answers with index.html. */
const SURFACES = ['/portal', '/admin', '/miniapp'] as const;

/**
 * Pages must not be framed (clickjacking), except the Mini App, which Telegram's web client shows in an
 * iframe. Everything is loaded from this origin: no CDN, no outside fonts. Helmet sends the headers.
 */
function helmetOf(surface: (typeof SURFACES)[number]) {
  const isMiniApp = surface === '/miniapp';
  return {
    contentSecurityPolicy: {
      directives: {
        ...BASE_CSP_DIRECTIVES,
        frameAncestors: isMiniApp
          ? ["'self'", 'https://web.telegram.org', 'https://*.telegram.org']
          : ["'none'"],
      },
    },
    // X-Frame-Options cannot name Telegram; the CSP above is what browsers apply.
    frameguard: isMiniApp ? false : ({ action: 'deny' } as const),
  };
}

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Web assets not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:15vh auto;padding:0 1.5rem;color:#0f172a}
code{background:#f1f5f9;padding:.15rem .4rem;border-radius:.3rem}</style></head>
<body><h1>Web assets not built</h1>
<p>web assets not built: run <code>npm run build:web</code> (the API serves the portal, the admin panel
and the Mini App from <code>web/dist</code>).</p>
<p lang="ru">Веб-интерфейс не собран: выполните <code>npm run build:web</code>.</p></body></html>`;

/** Reads index.html once per change of the file (a rebuild while the server runs is picked up). */
class IndexFile {
  private cached: { mtimeMs: number; body: Buffer } | null = null;

  constructor(private readonly file: string) {}

  async read(): Promise<Buffer | null> {
    try {
      const info = await stat(this.file);
      if (this.cached?.mtimeMs !== info.mtimeMs) {
        this.cached = { mtimeMs: info.mtimeMs, body: await readFile(this.file) };
      }
      return this.cached.body;
    } catch {
      this.cached = null;
      return null;
    }
  }
}

/**
 * The web front end: hashed assets under /assets/ cached for a year, and index.html (never cached, so a
 * deploy is seen at once) for /portal, /admin, /miniapp and any path under them (client-side routes).
 * Without a build those pages answer 503 saying how to build it.
 */
export function webRoutes(options: { distDir?: string } = {}): FastifyPluginAsync {
  const distDir = options.distDir ?? DEFAULT_WEB_DIST;
  const index = new IndexFile(path.join(distDir, 'index.html'));
  return async (app) => {
    await app.register(fastifyStatic, {
      root: path.join(distDir, 'assets'),
      prefix: '/assets/',
      // Another plugin (Swagger UI) may own reply.sendFile; this one only serves its prefix.
      decorateReply: false,
      index: false,
      list: false,
      // File names carry a content hash: a changed file is a new URL.
      immutable: true,
      maxAge: '365d',
      schemaHide: true,
    });

    const sendIndex = async (reply: FastifyReply) => {
      const body = await index.read();
      reply.header('cache-control', 'no-cache');
      if (!body) {
        return reply
          .status(503)
          .type('text/html; charset=utf-8')
          .header('retry-after', '60')
          .send(NOT_BUILT_PAGE);
      }
      return reply.type('text/html; charset=utf-8').send(body);
    };

    for (const surface of SURFACES) {
      const options = { schema: { hide: true }, helmet: helmetOf(surface) };
      app.get(surface, options, (_request, reply) => sendIndex(reply));
      app.get(`${surface}/*`, options, (_request, reply) => sendIndex(reply));
    }
  };
}
