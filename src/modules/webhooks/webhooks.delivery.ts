import type { Agent } from 'undici';
import { request } from 'undici';
import type { DeliveryResult } from '../../jobs/delivery.js';
import { activeTraceCarrier } from '../../lib/tracing.js';
import { checkUrlTarget, createGuardedAgent, findSsrfRefusal } from './ssrf.js';
import { signWebhook, type WebhookSignatureHeaders } from './webhooks.signing.js';

/** The User-Agent of every webhook request, so merchants can recognise and allow-list us. */
export const WEBHOOK_USER_AGENT = 'loyalty-platform-webhooks/1';

// Enough of a response to show the merchant what their endpoint said; a huge or endless body is cut
// off here rather than read into memory.
const MAX_BODY_BYTES = 64 * 1024;
const EXCERPT_CHARS = 512;

// One guarded agent per policy for the whole process, so connections to a merchant are kept alive
// between deliveries. Every new connection passes the SSRF guard; a kept-alive one was checked when
// it was opened.
const agents = new Map<boolean, Agent>();

function agentFor(allowPrivate: boolean): Agent {
  let agent = agents.get(allowPrivate);
  if (!agent) {
    agent = createGuardedAgent({ allowPrivate });
    agents.set(allowPrivate, agent);
  }
  return agent;
}

/** Closes the kept-alive connections of webhook delivery (on worker shutdown). */
export async function closeWebhookAgents(): Promise<void> {
  const open = [...agents.values()];
  agents.clear();
  await Promise.all(open.map((agent) => agent.close()));
}

/** The JSON body of a webhook: the event type, when it happened, and its data. */
export function buildWebhookBody(options: { type: string; occurredAt: Date; payload: unknown }): string {
  return JSON.stringify({
    type: options.type,
    timestamp: options.occurredAt.toISOString(),
    data: options.payload,
  });
}

/** Seconds to wait from a Retry-After header (delta seconds or an HTTP date); undefined when unusable. */
export function parseRetryAfter(value: string | string[] | undefined, now = new Date()): number | undefined {
  const header = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!header) return undefined;
  if (/^\d+$/.test(header)) return Number.parseInt(header, 10);
  const date = Date.parse(header);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now.getTime()) / 1000));
}

/** Reads at most MAX_BODY_BYTES of a body, keeping what arrived when the deadline aborts it. */
async function readExcerpt(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_BODY_BYTES) break;
    }
  } catch {
    // A body cut short by the deadline or the peer still has a useful beginning.
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8').slice(0, EXCERPT_CHARS);
}

// undici's own connect/headers/body timers may fire a moment before ours; they mean the same thing.
const UNDICI_TIMEOUTS = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

function isUndiciTimeout(error: unknown): boolean {
  return error instanceof Error && UNDICI_TIMEOUTS.has(String((error as NodeJS.ErrnoException).code));
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${code ? `${code} ` : ''}${error.message}${cause}`.slice(0, 500);
}

/**
 * Delivers one event to one merchant endpoint, signed with every given secret, and reports how it
 * went; it never throws. The dispatcher passes a `messageId` that is stable across retries (the
 * outbox event id) and decides about retries from the result.
 */
export async function deliverWebhook(options: {
  endpoint: { url: string; secrets: string[] };
  messageId: string;
  type: string;
  payload: unknown;
  occurredAt: Date;
  allowPrivateNetworks: boolean;
  timeoutMs?: number;
}): Promise<DeliveryResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const timeoutMs = options.timeoutMs ?? 10_000;

  const url = URL.parse(options.endpoint.url);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    return { result: 'error', durationMs: elapsed(), error: 'invalid webhook URL', isPermanent: true };
  }
  // Literal targets are refused here already (the agent would refuse them too) for a clear message.
  const literalRefusal = checkUrlTarget(url, { allowPrivate: options.allowPrivateNetworks });
  if (literalRefusal !== null) {
    return {
      result: 'error',
      durationMs: elapsed(),
      error: `SSRF guard: ${literalRefusal}; private network targets are not allowed`,
      isPermanent: true,
    };
  }

  const body = buildWebhookBody(options);
  let headers: WebhookSignatureHeaders;
  try {
    // Signed at the time of this attempt: receivers reject timestamps older than a few minutes.
    headers = signWebhook({
      secrets: options.endpoint.secrets,
      messageId: options.messageId,
      timestamp: new Date(),
      body,
    });
  } catch (error) {
    // No secret or a malformed one: retrying cannot fix the endpoint's configuration.
    return {
      result: 'error',
      durationMs: elapsed(),
      error: `cannot sign: ${describeError(error)}`,
      isPermanent: true,
    };
  }
  const controller = new AbortController();
  let isTimedOut = false;
  // One deadline for connect, headers and body together, so a slow-drip body cannot hold a worker.
  const timer = setTimeout(() => {
    isTimedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await request(url, {
      method: 'POST',
      dispatcher: agentFor(options.allowPrivateNetworks),
      headers: {
        'content-type': 'application/json',
        'user-agent': WEBHOOK_USER_AGENT,
        ...headers,
        // The delivery's trace (traceparent) while tracing is on.
        ...activeTraceCarrier(),
      },
      body,
      signal: controller.signal,
      maxRedirections: 0,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const status = response.statusCode;
    const responseExcerpt = await readExcerpt(response.body);
    const base = { statusCode: status, durationMs: elapsed(), responseExcerpt };
    // Once the status line arrived the outcome is known; a body cut off by the deadline does not
    // turn a 2xx into a timeout (retrying would deliver the event twice).
    if (status >= 200 && status < 300) return { result: 'ok', ...base };
    if (status === 429) {
      return {
        result: 'rate_limited',
        ...base,
        error: 'HTTP 429 Too Many Requests',
        retryAfterSeconds: parseRetryAfter(response.headers['retry-after']),
      };
    }
    if (status === 410) {
      return {
        result: 'http_error',
        ...base,
        error: 'HTTP 410 Gone: the endpoint is gone',
        isPermanent: true,
      };
    }
    if (status >= 300 && status < 400) {
      const location = response.headers.location;
      const target = (Array.isArray(location) ? location[0] : location)?.slice(0, 200);
      const to = target ? ` to ${target}` : '';
      return { result: 'http_error', ...base, error: `HTTP ${status}: redirect${to} not followed` };
    }
    return { result: 'http_error', ...base, error: `HTTP ${status}` };
  } catch (error) {
    if (isTimedOut || isUndiciTimeout(error)) {
      return { result: 'timeout', durationMs: elapsed(), error: `no response within ${timeoutMs} ms` };
    }
    const refusal = findSsrfRefusal(error);
    if (refusal) {
      return {
        result: 'error',
        durationMs: elapsed(),
        error: `SSRF guard: ${refusal.message}; private network targets are not allowed`,
        isPermanent: true,
      };
    }
    return { result: 'error', durationMs: elapsed(), error: describeError(error) };
  } finally {
    clearTimeout(timer);
  }
}
