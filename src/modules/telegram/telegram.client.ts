import { Api, GrammyError, HttpError } from 'grammy';
import type { ForceReply, InlineKeyboardMarkup, ParseMode, ReplyKeyboardMarkup } from 'grammy/types';
import { type DeliveryOutcome, type DeliveryResult, excerpt } from '../../jobs/delivery.js';
import { botKeyOf, type TelegramThrottle } from './telegram.throttle.js';

// Every call to the Bot API goes through grammY's Api with apiRoot = TELEGRAM_API_BASE_URL, so
// tests and a local Bot API server stand in for api.telegram.org. The token is part of every URL:
// nothing that leaves this module (error text, excerpts) may contain it.

/** How long one send may take before it counts as a timeout. */
export const TELEGRAM_TIMEOUT_MS = 10_000;

type TelegramSignal = Parameters<Api['sendMessage']>[3];

/** A keyboard or force-reply attached to a message. */
export type TelegramReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ForceReply;

/** An Api client for one bot (getMe, setWebhook...); `apiBaseUrl` is TELEGRAM_API_BASE_URL. */
export function callTelegram(
  token: string,
  apiBaseUrl: string,
  options: { timeoutSeconds?: number } = {},
): Api {
  const api = new Api(token, {
    // grammY refuses an apiRoot with a trailing slash.
    apiRoot: apiBaseUrl.replace(/\/+$/, ''),
    // grammY's default is 500 s: far too long for a call made while an HTTP request waits.
    timeoutSeconds: options.timeoutSeconds ?? TELEGRAM_TIMEOUT_MS / 1000,
  });
  instrumentTelegramApi(api);
  return api;
}

/** One Bot API call as external_requests_total{provider="telegram"} counts it. */
export type TelegramCallObserver = (call: {
  result: DeliveryOutcome;
  status?: number;
  method: string;
}) => void;

let observer: TelegramCallObserver | null = null;

/** Sets who hears about every Bot API call of this process (the metrics of the API or worker). */
export function observeTelegramCalls(next: TelegramCallObserver | null): void {
  observer = next;
}

/** Reports every call of an Api (also a grammY Bot's `bot.api`) to the process's observer. */
export function instrumentTelegramApi(api: Api): void {
  api.config.use(async (prev, method, payload, signal) => {
    try {
      const response = await prev(method, payload, signal);
      if (response.ok) observer?.({ result: 'ok', status: 200, method });
      else {
        const result = response.error_code === 429 ? 'rate_limited' : 'http_error';
        observer?.({ result, status: response.error_code, method });
      }
      return response;
    } catch (error) {
      const isTimeout = error instanceof Error && /abort|timeout/i.test(`${error.name} ${error.message}`);
      observer?.({ result: isTimeout ? 'timeout' : 'error', method });
      throw error;
    }
  });
}

/** Removes a bot token (the given one, and anything shaped like one) from a text. */
export function redactToken(text: string, token?: string): string {
  const cleaned = token ? text.split(token).join('<token>') : text;
  return cleaned.replace(/\d{5,}:[A-Za-z0-9_-]{20,}/g, '<token>');
}

/** Describes a failed Bot API call without the token (network errors carry the URL inside). */
export function describeTelegramError(error: unknown, token?: string): string {
  if (error instanceof GrammyError) return redactToken(`${error.error_code}: ${error.description}`, token);
  if (error instanceof HttpError) {
    const cause = error.error;
    const code =
      typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string'
        ? ` (${cause.code})`
        : '';
    return redactToken(`${error.message}${code}`, token);
  }
  return redactToken(error instanceof Error ? error.message : String(error), token);
}

// Telegram answers 400 for chats that do not exist (never started the bot, deleted account):
// retrying cannot help, like 403 (blocked by the user, kicked from the group).
const PERMANENT_400 = /chat not found|user not found|PEER_ID_INVALID|bot can't initiate conversation/i;

/** Sends a text message; never throws: every outcome is a DeliveryResult for the outbox. */
export async function sendTelegramMessage(options: {
  token: string;
  chatId: string | number;
  text: string;
  /** TELEGRAM_API_BASE_URL. */
  apiBaseUrl: string;
  replyMarkup?: TelegramReplyMarkup;
  parseMode?: ParseMode;
  /** When given: waits for the chat's and bot's turn first, and pauses the bot after a 429. */
  throttle?: TelegramThrottle;
  /** Overrides the 10 s timeout (tests). */
  timeoutMs?: number;
}): Promise<DeliveryResult> {
  const { token, chatId, text } = options;
  const botKey = botKeyOf(token);
  if (options.throttle) await options.throttle.wait({ botKey, chatId });

  const timeoutMs = options.timeoutMs ?? TELEGRAM_TIMEOUT_MS;
  // Our own timer decides (so a timeout is told apart from other failures); grammY's is a backstop.
  const api = callTelegram(token, options.apiBaseUrl, { timeoutSeconds: timeoutMs / 1000 + 5 });
  const controller = new AbortController();
  let isTimedOut = false;
  const timer = setTimeout(() => {
    isTimedOut = true;
    controller.abort();
  }, timeoutMs);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const message = await api.sendMessage(
      chatId,
      text,
      {
        ...(options.parseMode ? { parse_mode: options.parseMode } : {}),
        ...(options.replyMarkup ? { reply_markup: options.replyMarkup } : {}),
      },
      // grammY types its signal as the abort-controller polyfill's; Node's AbortSignal is what it
      // checks for at run time (addEventListener), so only the static type differs.
      controller.signal as unknown as TelegramSignal,
    );
    return {
      result: 'ok',
      statusCode: 200,
      durationMs: elapsed(),
      responseExcerpt: excerpt(JSON.stringify({ ok: true, message_id: message.message_id })),
    };
  } catch (error) {
    const durationMs = elapsed();
    if (error instanceof GrammyError) {
      const description = redactToken(error.description, token);
      const responseExcerpt = excerpt(
        JSON.stringify({
          ok: false,
          error_code: error.error_code,
          description,
          parameters: error.parameters,
        }),
      );
      const base = { statusCode: error.error_code, durationMs, responseExcerpt };
      if (error.error_code === 429) {
        const retryAfterSeconds = error.parameters.retry_after ?? 1;
        options.throttle?.pauseBot(botKey, retryAfterSeconds);
        return { ...base, result: 'rate_limited', retryAfterSeconds, error: `429: ${description}` };
      }
      const isPermanent =
        error.error_code === 403 || (error.error_code === 400 && PERMANENT_400.test(error.description));
      return {
        ...base,
        result: 'http_error',
        error: `${error.error_code}: ${description}`,
        ...(isPermanent ? { isPermanent: true } : {}),
      };
    }
    if (isTimedOut) {
      return {
        result: 'timeout',
        durationMs,
        error: `sendMessage timed out after ${timeoutMs} ms`,
      };
    }
    return { result: 'error', durationMs, error: describeTelegramError(error, token) };
  } finally {
    clearTimeout(timer);
  }
}
