import http from 'node:http';
import { errorCodeOf, type Outcome } from './stats.js';

// A small JSON client over node:http with a keep-alive agent. Loopback only. An undici Agent in its
// place (undici is a dependency, for webhook delivery) cost the load generator as much CPU per
// request (40% of a core at 6,356 resolves/s against 38% at 6,550), so node:http stays.

/** A status and the raw body of an answer. */
export interface HttpAnswer {
  status: number;
  body: string;
}

/** A keep-alive agent that never opens more than `maxSockets` connections. */
export function keepAliveAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
}

/** JSON requests to one port on 127.0.0.1 through one agent. */
export class HttpClient {
  constructor(
    private readonly port: number,
    private readonly agent: http.Agent,
    private readonly timeoutMs = 10_000,
  ) {}

  request(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<HttpAnswer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const all: Record<string, string> = { ...headers };
    if (payload !== undefined) {
      all['content-type'] = 'application/json';
      all['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: this.port, method, path, agent: this.agent, headers: all },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** POST and turn the answer into an Outcome (status and error code). */
  async post(path: string, body: unknown, headers: Record<string, string>): Promise<Outcome> {
    const answer = await this.request('POST', path, body, headers);
    if (answer.status >= 200 && answer.status < 300) return { status: answer.status };
    return { status: answer.status, code: errorCodeOf(answer.body) };
  }
}
