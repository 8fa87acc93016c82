import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// A Telegram Bot API stand-in on 127.0.0.1: real HTTP, the Bot API's URL and answer shapes
// (POST /bot<token>/<method>, {ok, result} or {ok:false, error_code, description, parameters}).
// It knows the bots it was given (others get 401), records every call, and fails on request.

/** A file uploaded in a multipart call (sendPhoto with an InputFile): stands in for its field. */
export interface FakeTelegramFile {
  filename: string;
  contentType: string;
  data: Buffer;
}

/** One call the fake received. */
export interface FakeTelegramCall {
  token: string;
  method: string;
  /** Query string, JSON, form or multipart fields of the call; uploaded files are FakeTelegramFile. */
  params: Record<string, unknown>;
  /** The HTTP status the fake answered with. */
  status: number;
}

/** A running fake Bot API. */
export interface FakeTelegram {
  /** Pass as TELEGRAM_API_BASE_URL / apiBaseUrl. */
  baseUrl: string;
  /** Every call in arrival order, failed ones included. */
  calls: FakeTelegramCall[];
  /** Makes `token` a known bot (getMe answers with `username`); returns the token. */
  addBot(token: string, username?: string): string;
  /** A fresh known bot token, e.g. "700001:AAF..."; `username` defaults to test_<id>_bot. */
  createBot(username?: string): string;
  /** The next `count` calls (any method, any bot) answer 429 with retry_after `retryAfter` seconds. */
  rateLimitNext(count: number, retryAfter: number): void;
  /** sendMessage to `chatId` answers 403 (the user blocked the bot) or 400 "chat not found". */
  failChat(chatId: string | number, kind?: 'blocked' | 'not_found'): void;
  /** The next `count` calls answer only after `ms` milliseconds (timeouts). */
  delayNext(count: number, ms: number): void;
  /** Successful sendMessage calls, optionally to one chat. */
  sentMessages(chatId?: string | number): Array<{ token: string; chatId: string; text: string }>;
  /** Successful sendPhoto calls, optionally to one chat; `photo` is the upload (or the file id / URL). */
  sentPhotos(
    chatId?: string | number,
  ): Array<{ token: string; chatId: string; photo: FakeTelegramFile | string; caption?: string }>;
  /** The webhook a bot registered with setWebhook (URL and secret_token), as Telegram would keep it. */
  webhookOf(token: string): { url: string; secret?: string } | undefined;
  /** Resolves with the first recorded call (past or future) that matches; rejects after `timeoutMs`. */
  waitForCall(predicate: (call: FakeTelegramCall) => boolean, timeoutMs?: number): Promise<FakeTelegramCall>;
  close(): Promise<void>;
}

interface Bot {
  id: number;
  username: string;
}

/**
 * A lenient multipart/form-data reader: grammY writes headers as `content-disposition:form-data;
 * name="x";filename=a.png` (no spaces, unquoted filename), which undici's FormData parser rejects.
 */
function parseMultipart(
  raw: Buffer,
  contentType: string,
): Array<{ name: string; filename?: string; contentType: string; data: Buffer }> {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!boundary) throw new Error('multipart body without a boundary');
  // latin1 maps every byte to one character, so slicing the string slices the bytes exactly.
  const text = raw.toString('latin1');
  const parts: Array<{ name: string; filename?: string; contentType: string; data: Buffer }> = [];
  for (const chunk of text.split(`--${boundary}`).slice(1)) {
    if (chunk.startsWith('--')) break;
    const headerEnd = chunk.indexOf('\r\n\r\n');
    if (headerEnd < 0) continue;
    const headers = chunk.slice(2, headerEnd);
    const body = chunk.slice(headerEnd + 4, chunk.endsWith('\r\n') ? -2 : undefined);
    const name = /name="?([^";\r\n]+)"?/i.exec(headers)?.[1];
    if (!name) continue;
    const filename = /filename="?([^";\r\n]+)"?/i.exec(headers)?.[1];
    const partType = /content-type:\s*([^\r\n;]+)/i.exec(headers)?.[1] ?? 'application/octet-stream';
    parts.push({
      name,
      ...(filename === undefined ? {} : { filename }),
      contentType: partType,
      data: Buffer.from(body, 'latin1'),
    });
  }
  return parts;
}

async function readParams(req: IncomingMessage, url: URL): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const body = raw.toString('utf8');
  const params: Record<string, unknown> = Object.fromEntries(url.searchParams);
  const type = req.headers['content-type'] ?? '';
  if (body === '') return params;
  if (type.includes('application/json'))
    return { ...params, ...(JSON.parse(body) as Record<string, unknown>) };
  if (type.includes('multipart/form-data')) {
    // Uploads (grammY's InputFile): the file part is referenced from its field as attach://<name>.
    const files = new Map<string, FakeTelegramFile>();
    for (const part of parseMultipart(raw, type)) {
      if (part.filename === undefined) {
        const value = part.data.toString('utf8');
        params[part.name] = /^[[{]/.test(value) ? JSON.parse(value) : value;
      } else {
        const file = { filename: part.filename, contentType: part.contentType, data: part.data };
        files.set(part.name, file);
        params[part.name] = file;
      }
    }
    for (const [key, value] of Object.entries(params)) {
      const attached = typeof value === 'string' ? /^attach:\/\/(.+)$/.exec(value)?.[1] : undefined;
      const file = attached ? files.get(attached) : undefined;
      if (file) params[key] = file;
    }
    return params;
  }
  if (type.includes('application/x-www-form-urlencoded')) {
    // Form fields are strings; Telegram decodes JSON-looking ones (reply_markup, allowed_updates).
    for (const [key, value] of new URLSearchParams(body)) {
      params[key] = /^[[{]/.test(value) ? JSON.parse(value) : value;
    }
  }
  return params;
}

/** Starts the fake on a random loopback port. */
export async function startFakeTelegram(): Promise<FakeTelegram> {
  const bots = new Map<string, Bot>();
  const calls: FakeTelegramCall[] = [];
  const failingChats = new Map<string, 'blocked' | 'not_found'>();
  const webhooks = new Map<string, { url: string; secret?: string }>();
  const waiters = new Set<{
    predicate: (c: FakeTelegramCall) => boolean;
    resolve: (c: FakeTelegramCall) => void;
  }>();
  const timers = new Set<NodeJS.Timeout>();
  let rateLimited = { count: 0, retryAfter: 0 };
  let delayed = { count: 0, ms: 0 };
  let nextBotId = 700_001;
  let nextMessageId = 1;

  function answer(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  function fail(status: number, description: string, parameters?: Record<string, unknown>) {
    return {
      status,
      body: { ok: false, error_code: status, description, ...(parameters ? { parameters } : {}) },
    };
  }

  function handle(
    token: string,
    method: string,
    params: Record<string, unknown>,
  ): { status: number; body: unknown } {
    const bot = bots.get(token);
    if (!bot) return fail(401, 'Unauthorized');
    if (rateLimited.count > 0) {
      rateLimited.count -= 1;
      const n = rateLimited.retryAfter;
      return fail(429, `Too Many Requests: retry after ${n}`, { retry_after: n });
    }
    const ok = (result: unknown) => ({ status: 200, body: { ok: true, result } });
    switch (method) {
      case 'getMe':
        return ok({ id: bot.id, is_bot: true, first_name: bot.username, username: bot.username });
      case 'sendMessage': {
        const chatId = String(params.chat_id ?? '');
        if (chatId === '' || typeof params.text !== 'string' || params.text === '') {
          return fail(400, 'Bad Request: message text is empty');
        }
        const failure = failingChats.get(chatId);
        if (failure === 'blocked') return fail(403, 'Forbidden: bot was blocked by the user');
        if (failure === 'not_found') return fail(400, 'Bad Request: chat not found');
        return ok({
          message_id: nextMessageId++,
          date: Math.floor(Date.now() / 1000),
          chat: { id: Number(chatId), type: 'private' },
          text: params.text,
        });
      }
      case 'sendPhoto': {
        const chatId = String(params.chat_id ?? '');
        if (chatId === '' || params.photo === undefined || params.photo === '') {
          return fail(400, 'Bad Request: there is no photo in the request');
        }
        const failure = failingChats.get(chatId);
        if (failure === 'blocked') return fail(403, 'Forbidden: bot was blocked by the user');
        if (failure === 'not_found') return fail(400, 'Bad Request: chat not found');
        const fileId = `photo_${nextMessageId}`;
        return ok({
          message_id: nextMessageId++,
          date: Math.floor(Date.now() / 1000),
          chat: { id: Number(chatId), type: 'private' },
          photo: [{ file_id: fileId, file_unique_id: fileId, width: 512, height: 512 }],
          ...(typeof params.caption === 'string' ? { caption: params.caption } : {}),
        });
      }
      case 'answerCallbackQuery':
        if (typeof params.callback_query_id !== 'string') {
          return fail(
            400,
            'Bad Request: query is too old and response timeout expired or query ID is invalid',
          );
        }
        return ok(true);
      case 'setChatMenuButton':
      case 'setMyCommands':
        return ok(true);
      case 'setWebhook': {
        if (typeof params.url !== 'string') return fail(400, 'Bad Request: bad webhook: URL must be set');
        const secret = typeof params.secret_token === 'string' ? params.secret_token : undefined;
        webhooks.set(token, { url: params.url, ...(secret ? { secret } : {}) });
        return ok(true);
      }
      case 'deleteWebhook':
        webhooks.delete(token);
        return ok(true);
      case 'getWebhookInfo':
        return ok({
          url: webhooks.get(token)?.url ?? '',
          has_custom_certificate: false,
          pending_update_count: 0,
        });
      default:
        return fail(404, 'Not Found');
    }
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    readParams(req, url).then(
      (params) => {
        if (!match) return answer(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
        const token = decodeURIComponent(match[1] ?? '');
        const method = match[2] ?? '';
        const { status, body } = handle(token, method, params);
        const call = { token, method, params, status };
        calls.push(call);
        for (const waiter of waiters) {
          if (waiter.predicate(call)) {
            waiters.delete(waiter);
            waiter.resolve(call);
          }
        }
        if (delayed.count > 0) {
          delayed.count -= 1;
          const timer = setTimeout(() => {
            timers.delete(timer);
            if (!res.destroyed) answer(res, status, body);
          }, delayed.ms);
          timers.add(timer);
          return;
        }
        answer(res, status, body);
      },
      () => answer(res, 400, { ok: false, error_code: 400, description: 'Bad Request: cannot parse body' }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  function addBot(token: string, username?: string): string {
    const id = Number(token.split(':')[0]) || nextBotId++;
    bots.set(token, { id, username: username ?? `test_${id}_bot` });
    return token;
  }

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    calls,
    addBot,
    createBot(username) {
      const id = nextBotId++;
      return addBot(`${id}:AAF${randomBytes(16).toString('base64url')}`, username);
    },
    rateLimitNext(count, retryAfter) {
      rateLimited = { count, retryAfter };
    },
    failChat(chatId, kind = 'blocked') {
      failingChats.set(String(chatId), kind);
    },
    delayNext(count, ms) {
      delayed = { count, ms };
    },
    sentMessages(chatId) {
      return calls
        .filter((c) => c.method === 'sendMessage' && c.status === 200)
        .map((c) => ({ token: c.token, chatId: String(c.params.chat_id), text: String(c.params.text) }))
        .filter((m) => chatId === undefined || m.chatId === String(chatId));
    },
    sentPhotos(chatId) {
      return calls
        .filter((c) => c.method === 'sendPhoto' && c.status === 200)
        .map((c) => ({
          token: c.token,
          chatId: String(c.params.chat_id),
          photo: c.params.photo as FakeTelegramFile | string,
          ...(typeof c.params.caption === 'string' ? { caption: c.params.caption } : {}),
        }))
        .filter((m) => chatId === undefined || m.chatId === String(chatId));
    },
    webhookOf(token) {
      return webhooks.get(token);
    },
    waitForCall(predicate, timeoutMs = 5_000) {
      const found = calls.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (call: FakeTelegramCall) => {
            clearTimeout(timer);
            resolve(call);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`fake Telegram: no matching call within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      // grammY keeps connections alive: drop them, or close() waits for their idle timeout.
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
