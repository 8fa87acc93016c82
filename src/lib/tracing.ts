import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

// Optional OpenTelemetry tracing (OTEL_EXPORTER_OTLP_ENDPOINT). Off by default and free when off:
// the SDK (tracing.sdk.ts) is imported only when the endpoint is set, every helper here returns at
// once while it is off, and the HTTP hooks are not even registered. @opentelemetry/api is only the
// no-op facade (prom-client loads it anyway). Spans: the HTTP request, the ledger call, and in the
// worker the delivery of each outbox event, which continues the trace stored with the event
// (outbox_events.trace_context); webhook requests carry its `traceparent`.

/** A W3C trace context as stored with an outbox event: `traceparent` and optionally `tracestate`. */
export type TraceCarrier = Record<string, string>;

let isEnabled = false;
const tracer = () => trace.getTracer('loyalty');

/** Whether spans are recorded and exported (OTEL_EXPORTER_OTLP_ENDPOINT is set). */
export function isTracingEnabled(): boolean {
  return isEnabled;
}

/**
 * Starts exporting spans to `endpoint` (OTLP over HTTP, JSON) as `serviceName`, when it is set;
 * returns a function that flushes and stops the exporter. Unset: nothing is loaded.
 */
export async function startTracing(options: {
  endpoint: string | undefined;
  serviceName: string;
}): Promise<() => Promise<void>> {
  if (!options.endpoint) return async () => {};
  const { startTracingSdk } = await import('./tracing.sdk.js');
  const stop = startTracingSdk({ endpoint: options.endpoint, serviceName: options.serviceName });
  isEnabled = true;
  return async () => {
    isEnabled = false;
    await stop();
  };
}

/** The context of a stored carrier (a new trace when there is none). */
function contextOf(carrier: TraceCarrier | null | undefined): Context {
  return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : context.active();
}

/** Ends `span` with the outcome of a request or call. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
  }
  span.end();
}

/**
 * Runs `fn` inside a span named `name` (a child of the active span, or of `parent` when given);
 * while tracing is off it just runs `fn`.
 */
export async function withSpan<T>(
  name: string,
  options: {
    attributes?: Attributes;
    parent?: TraceCarrier | null;
    kind?: 'internal' | 'producer' | 'consumer';
  },
  fn: () => Promise<T>,
): Promise<T> {
  if (!isEnabled) return fn();
  const kind =
    options.kind === 'consumer'
      ? SpanKind.CONSUMER
      : options.kind === 'producer'
        ? SpanKind.PRODUCER
        : SpanKind.INTERNAL;
  const parent = options.parent === undefined ? context.active() : contextOf(options.parent);
  return tracer().startActiveSpan(name, { kind, attributes: options.attributes }, parent, async (span) => {
    try {
      const result = await fn();
      endSpan(span);
      return result;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  });
}

/** Starts a server span for an incoming request (continuing the caller's `traceparent`). */
export function startServerSpan(
  name: string,
  headers: Record<string, unknown>,
  attributes: Attributes,
): { span: Span; context: Context } {
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Runs `fn` with `ctx` as the active context (so the spans it starts are children). */
export function runInContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** The active span's W3C trace context (`traceparent`, `tracestate`), or null while tracing is off. */
export function activeTraceCarrier(): TraceCarrier | null {
  if (!isEnabled) return null;
  const carrier: TraceCarrier = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ? carrier : null;
}

/** `trace_id` and `span_id` of a span, for log lines. */
export function traceFieldsOf(span: Span): { trace_id: string; span_id: string } {
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/**
 * pino mixin: `trace_id` and `span_id` of the active span on every log line, unless the logger
 * already carries them (a request's logger is bound to its request span).
 */
export function traceLogMixin(
  _object: object,
  _level: number,
  logger?: { bindings(): Record<string, unknown> },
): object {
  if (!isEnabled) return {};
  const span = trace.getSpan(context.active());
  if (!span || logger?.bindings().trace_id !== undefined) return {};
  return traceFieldsOf(span);
}
