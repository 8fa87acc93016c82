import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

// The OpenTelemetry SDK, imported by tracing.ts only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
// NodeTracerProvider.register() installs the AsyncLocalStorage context manager and the W3C trace
// context propagator; spans leave in batches over OTLP/HTTP with JSON bodies.

/** Registers the global tracer provider exporting to `endpoint`; returns a flush-and-stop function. */
export function startTracingSdk(options: { endpoint: string; serviceName: string }): () => Promise<void> {
  const exporter = new OTLPTraceExporter({ url: `${options.endpoint.replace(/\/+$/, '')}/v1/traces` });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 500 })],
  });
  provider.register();
  return () => provider.shutdown();
}
