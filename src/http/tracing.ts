import type { Context, Span } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import { endSpan, isTracingEnabled, runInContext, startServerSpan, traceFieldsOf } from '../lib/tracing.js';

// A server span per request while tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT): it continues the
// caller's traceparent, is the parent of what the handler does (the ledger call and, through the
// outbox, the webhook delivery), and binds trace_id/span_id to the request's logger. Off: no hooks.

declare module 'fastify' {
  interface FastifyRequest {
    traceSpan?: { span: Span; context: Context };
  }
}

/** Registers the request span hooks, only when tracing is on. */
export function registerRequestTracing(app: FastifyInstance): void {
  if (!isTracingEnabled()) return;
  app.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unknown route';
    request.traceSpan = startServerSpan(`${request.method} ${route}`, request.headers, {
      'http.request.method': request.method,
      'http.route': route,
    });
    // 'request completed' is logged through the reply's logger: both carry the ids.
    const log = request.log.child(traceFieldsOf(request.traceSpan.span));
    request.log = log;
    reply.log = log;
    done();
  });
  // The handler runs from this hook's callback: inside the span's context.
  app.addHook('preHandler', (request, _reply, done) => {
    if (request.traceSpan) runInContext(request.traceSpan.context, done);
    else done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const traced = request.traceSpan;
    if (traced) {
      traced.span.setAttribute('http.response.status_code', reply.statusCode);
      endSpan(traced.span, reply.statusCode >= 500 ? new Error(`HTTP ${reply.statusCode}`) : undefined);
    }
    done();
  });
}
