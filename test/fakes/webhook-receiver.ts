import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';

// A merchant's webhook endpoint for tests: a real HTTP server on loopback that verifies every
// request with the standardwebhooks package (what merchants run) and can fail on purpose.

/**
 * How the receiver answers: 'ok' (200), 'down' (connections are dropped before any answer),
 * 'status:<code>' with an optional ':retry-after=<value>', 'slow:<ms>' (200 after a delay),
 * 'redirect' (307 to `<url>/redirect-target`, which records what reaches it like any other path),
 * 'redirect:<url>' (307 to that URL), 'reset' (the request is read, recorded, and the connection reset
 * without an answer) and 'huge:<bytes>' (200 with a body of that many bytes).
 */
export type ReceiverMode =
  | 'ok'
  | 'down'
  | 'redirect'
  | 'reset'
  | `redirect:${string}`
  | `status:${string}`
  | `slow:${number}`
  | `huge:${number}`;

/** One request the receiver got. */
export interface ReceivedDelivery {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** The parsed JSON body; undefined when the body is not JSON. */
  body: unknown;
  /** The signature verified with at least one of the receiver's secrets. */
  isVerified: boolean;
  /** Why verification failed, when it did. */
  verifyError?: string;
  /** The status the receiver answered with (0 when it reset the connection instead). */
  status: number;
  receivedAt: Date;
}

/** A running receiver; `url` is where to point an endpoint. */
export interface WebhookReceiver {
  url: string;
  /** Every request received, in order (dropped connections in 'down' mode are not requests). */
  deliveries: ReceivedDelivery[];
  /** Answer the next `n` requests with `status` (500 by default), whatever the mode. */
  failNext(n: number, status?: number): void;
  /** Answer the first `n` requests of every `webhook-id` as `mode` would, the later ones by the mode. */
  failFirst(n: number, mode: ReceiverMode): void;
  setMode(mode: ReceiverMode): void;
  /** Replace the secrets signatures are verified with (e.g. after a rotation). */
  setSecrets(secrets: string[]): void;
  /** Resolves once at least `count` deliveries arrived; rejects after `timeoutMs`. */
  waitForDeliveries(count: number, timeoutMs?: number): Promise<ReceivedDelivery[]>;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  delayMs?: number;
  /** Reset the connection instead of answering. */
  isReset?: boolean;
  /** Send a body of this many bytes. */
  bodyBytes?: number;
}

function answerFor(mode: ReceiverMode, baseUrl: string): Answer {
  if (mode === 'ok') return { status: 200 };
  if (mode === 'redirect') return { status: 307, headers: { location: `${baseUrl}/redirect-target` } };
  if (mode === 'reset') return { status: 0, isReset: true };
  if (mode.startsWith('redirect:'))
    return { status: 307, headers: { location: mode.slice('redirect:'.length) } };
  const huge = /^huge:(\d+)$/.exec(mode);
  if (huge) return { status: 200, bodyBytes: Number(huge[1]) };
  const slow = /^slow:(\d+)$/.exec(mode);
  if (slow) return { status: 200, delayMs: Number(slow[1]) };
  const status = /^status:(\d{3})(?::retry-after=(.+))?$/.exec(mode);
  if (status) {
    const retryAfter = status[2];
    return { status: Number(status[1]), headers: retryAfter ? { 'retry-after': retryAfter } : undefined };
  }
  throw new Error(`unknown receiver mode ${mode}`);
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

function verify(secrets: string[], rawBody: string, headers: IncomingHttpHeaders): string | undefined {
  if (secrets.length === 0) return 'the receiver knows no secret';
  let lastError = 'no secret verified';
  for (const secret of secrets) {
    try {
      new Webhook(secret).verify(rawBody, flatHeaders(headers), { jsonParse: false });
      return undefined;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
  }
  return lastError;
}

/** Starts a receiver on 127.0.0.1 (random port) that verifies with any of `secrets`. */
export async function startWebhookReceiver(secrets: string[] = []): Promise<WebhookReceiver> {
  let knownSecrets = [...secrets];
  let mode: ReceiverMode = 'ok';
  let failures: { remaining: number; status: number } = { remaining: 0, status: 500 };
  let firstFailures: { perId: number; mode: ReceiverMode } | null = null;
  const requestsById = new Map<string, number>();
  const deliveries: ReceivedDelivery[] = [];
  const waiters = new Set<() => void>();
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  let baseUrl = '';

  function send(res: ServerResponse, answer: Answer): void {
    if (res.destroyed) return;
    if (answer.isReset) {
      res.socket?.resetAndDestroy();
      return;
    }
    if (answer.bodyBytes !== undefined) {
      res.writeHead(answer.status, { 'content-type': 'text/plain', 'content-length': answer.bodyBytes });
      res.end(Buffer.alloc(answer.bodyBytes, 'x'));
      return;
    }
    const text =
      answer.status >= 200 && answer.status < 300 ? '{"ok":true}' : `failing on purpose (${answer.status})`;
    res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
    res.end(text);
  }

  const server = createServer((req, res) => {
    // A kept-alive connection from before 'down' still reaches here; drop it like a dead host would.
    if (mode === 'down') {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let answer: Answer;
      const webhookId = String(req.headers['webhook-id'] ?? '');
      const seen = (requestsById.get(webhookId) ?? 0) + 1;
      requestsById.set(webhookId, seen);
      if (firstFailures !== null && seen <= firstFailures.perId) {
        answer = answerFor(firstFailures.mode, baseUrl);
      } else if (failures.remaining > 0) {
        failures = { ...failures, remaining: failures.remaining - 1 };
        answer = { status: failures.status };
      } else {
        answer = answerFor(mode, baseUrl);
      }
      let body: unknown;
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = undefined;
      }
      const verifyError = verify(knownSecrets, rawBody, req.headers);
      deliveries.push({
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        rawBody,
        body,
        isVerified: verifyError === undefined,
        verifyError,
        status: answer.status,
        receivedAt: new Date(),
      });
      for (const wake of waiters) wake();
      if (answer.delayMs) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          send(res, answer);
        }, answer.delayMs);
        timers.add(timer);
      } else {
        send(res, answer);
      }
    });
  });
  server.on('connection', (socket: Socket) => {
    if (mode === 'down') {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;

  return {
    url: `${baseUrl}/webhook`,
    deliveries,
    failNext(n, status = 500) {
      failures = { remaining: n, status };
    },
    failFirst(n, failMode) {
      answerFor(failMode, baseUrl); // fail fast on a typo
      firstFailures = { perId: n, mode: failMode };
    },
    setMode(next) {
      answerFor(next === 'down' ? 'ok' : next, baseUrl); // fail fast on a typo
      mode = next;
      // Going down drops live connections too, as a crashed host would.
      if (next === 'down') for (const socket of sockets) socket.destroy();
    },
    setSecrets(next) {
      knownSecrets = [...next];
    },
    waitForDeliveries(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (deliveries.length < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(deliveries.slice());
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`expected ${count} webhook deliveries, got ${deliveries.length}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
