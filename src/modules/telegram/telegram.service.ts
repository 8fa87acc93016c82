import { randomBytes, timingSafeEqual } from 'node:crypto';
import { GrammyError } from 'grammy';
import type { Config } from '../../config.js';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { SecretBox } from '../../lib/crypto.js';
import { randomSecret, sha256Hex } from '../../lib/tokens.js';
import { callTelegram, describeTelegramError } from './telegram.client.js';
import { BOT_REPLIES, normalizeLocale } from './telegram.messages.js';

// Merchant bots (customer notifications) and the platform's notify bot (staff notifications).
// Secrets: a merchant's bot token is sealed with SecretBox (it must be read back to send); webhook
// secrets and staff link tokens are only compared, so only their SHA-256 is kept.

/** The updates bots are asked to deliver: text messages are all our handlers read. */
const ALLOWED_UPDATES = ['message'] as const;

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/** Compares a presented secret with a stored SHA-256 in constant time. */
function matchesHash(presented: string, storedHash: string): boolean {
  const a = Buffer.from(sha256Hex(presented), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The URL Telegram posts a merchant bot's updates to. */
export function merchantBotWebhookUrl(apiBaseUrl: string, merchantId: string): string {
  return `${trimSlash(apiBaseUrl)}/telegram/bots/${merchantId}/webhook`;
}

/**
 * Connects a merchant's bot: checks the token with getMe, registers the webhook when the public API
 * URL is known, and stores the token sealed with a fresh per-bot webhook secret.
 */
export async function connectMerchantBot(
  db: Executor,
  options: {
    merchantId: string;
    token: string;
    /** TELEGRAM_API_BASE_URL. */
    apiBaseUrl: string;
    /** API_BASE_URL: when set, the bot's webhook is registered under it. */
    apiBaseUrlForWebhook?: string;
    box: SecretBox;
  },
): Promise<{ botId: number; username: string; webhookUrl: string | null }> {
  const token = options.token.trim();
  const merchant = await db
    .selectFrom('merchants')
    .select('id')
    .where('id', '=', options.merchantId)
    .executeTakeFirst();
  if (!merchant) throw new AppError('merchant_not_found', `Merchant ${options.merchantId} not found`);
  // Telegram tokens look like 123456789:AA...; anything else cannot be one, and must never be sent
  // to the Bot API as a URL path segment.
  if (!/^\d+:[A-Za-z0-9_-]+$/.test(token)) {
    throw new AppError('validation_error', 'token: not a Telegram bot token (expected 123456:ABC...)');
  }

  const api = callTelegram(token, options.apiBaseUrl);
  let me: { id: number; username: string };
  try {
    me = await api.getMe();
  } catch (error) {
    if (error instanceof GrammyError && (error.error_code === 401 || error.error_code === 404)) {
      throw new AppError('validation_error', 'token: Telegram rejected the bot token (revoked or mistyped)');
    }
    throw new AppError(
      'unavailable',
      `Telegram Bot API did not answer: ${describeTelegramError(error, token)}`,
    );
  }

  const secret = randomBytes(32).toString('base64url');
  let webhookUrl: string | null = null;
  if (options.apiBaseUrlForWebhook) {
    webhookUrl = merchantBotWebhookUrl(options.apiBaseUrlForWebhook, options.merchantId);
    try {
      await api.setWebhook(webhookUrl, { secret_token: secret, allowed_updates: [...ALLOWED_UPDATES] });
    } catch (error) {
      throw new AppError('unavailable', `setWebhook failed: ${describeTelegramError(error, token)}`);
    }
  }
  // Stored after setWebhook succeeded: a failed connect leaves the previous bot untouched. Telegram
  // may post an update before this commits; it retries, and the retry finds the new secret.
  await db
    .updateTable('merchants')
    .set({
      telegram_bot_token_enc: options.box.seal(token),
      telegram_bot_username: me.username,
      telegram_webhook_secret: sha256Hex(secret),
      updated_at: new Date(),
    })
    .where('id', '=', options.merchantId)
    .execute();
  return { botId: me.id, username: me.username, webhookUrl };
}

/** The merchant's bot token, unsealed; null when no bot is connected. */
export async function getMerchantBotToken(
  db: Executor,
  box: SecretBox,
  merchantId: string,
): Promise<string | null> {
  const row = await db
    .selectFrom('merchants')
    .select('telegram_bot_token_enc')
    .where('id', '=', merchantId)
    .executeTakeFirst();
  return row?.telegram_bot_token_enc ? box.open(row.telegram_bot_token_enc) : null;
}

/** Whether `secret` (X-Telegram-Bot-Api-Secret-Token) is the merchant bot's webhook secret. */
export async function verifyMerchantBotSecret(
  db: Executor,
  options: { merchantId: string; secret: string | undefined },
): Promise<boolean> {
  if (!options.secret) return false;
  const row = await db
    .selectFrom('merchants')
    .select('telegram_webhook_secret')
    .where('id', '=', options.merchantId)
    .executeTakeFirst();
  return row?.telegram_webhook_secret ? matchesHash(options.secret, row.telegram_webhook_secret) : false;
}

/**
 * Issues a one-time token a staff member sends to the notify bot as `/start <token>` (deep link
 * t.me/<bot>?start=<token>); only its SHA-256 is stored.
 */
export async function createStaffLinkToken(
  db: Executor,
  options: { merchantId: string; ttlSeconds?: number },
): Promise<{ token: string; expiresAt: Date }> {
  const ttlSeconds = options.ttlSeconds ?? 86_400;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new AppError('validation_error', 'ttlSeconds: expected a positive whole number of seconds');
  }
  const merchant = await db
    .selectFrom('merchants')
    .select('id')
    .where('id', '=', options.merchantId)
    .executeTakeFirst();
  if (!merchant) throw new AppError('merchant_not_found', `Merchant ${options.merchantId} not found`);
  // /start payloads allow 1-64 characters of A-Z a-z 0-9 _ -: base64url fits.
  const token = randomSecret('sl_', 24);
  const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
  await db
    .insertInto('staff_telegram_links')
    .values({ merchant_id: options.merchantId, token_hash: sha256Hex(token), token_expires_at: expiresAt })
    .execute();
  return { token, expiresAt };
}

/** The part of a Telegram update the notify bot reads. */
export interface NotifyBotUpdate {
  update_id: number;
  message?: {
    text?: string;
    chat: { id: number | string; type: string };
    from?: { username?: string; language_code?: string };
  };
}

/** What the notify bot did with an update. */
export type NotifyBotOutcome =
  | { action: 'linked' | 'already_linked'; merchantId: string; chatId: string }
  | { action: 'expired_token' | 'invalid_token' | 'private_only' | 'help'; chatId: string }
  | { action: 'ignored' };

const START = /^\/start(?:@\w+)?(?:\s+(\S+))?\s*$/;

/**
 * Handles an update of the platform's notify bot: `/start <token>` in a private chat links the chat
 * to the token's merchant (single use); anything else in a private chat gets a short help.
 */
export async function handleNotifyBotUpdate(
  db: Executor,
  options: { update: NotifyBotUpdate; sendReply: (chatId: string, text: string) => Promise<void> | void },
): Promise<NotifyBotOutcome> {
  const message = options.update.message;
  if (!message || message.text === undefined) return { action: 'ignored' };
  const chatId = String(message.chat.id);
  const locale = normalizeLocale(message.from?.language_code);
  const start = START.exec(message.text.trim());
  if (message.chat.type !== 'private') {
    // In groups the bot stays quiet but for a /start, which it answers once with the way to link.
    if (!start) return { action: 'ignored' };
    await options.sendReply(chatId, BOT_REPLIES.privateOnly(locale));
    return { action: 'private_only', chatId };
  }
  const token = start?.[1];
  if (!token) {
    await options.sendReply(chatId, BOT_REPLIES.help(locale));
    return { action: 'help', chatId };
  }

  const outcome = await linkStaffChat(db, { token, chatId, username: message.from?.username ?? null });
  const reply =
    outcome.action === 'linked'
      ? BOT_REPLIES.linked(outcome.merchantName, locale)
      : outcome.action === 'already_linked'
        ? BOT_REPLIES.alreadyLinked(outcome.merchantName, locale)
        : outcome.action === 'expired_token'
          ? BOT_REPLIES.expired(locale)
          : BOT_REPLIES.invalid(locale);
  await options.sendReply(chatId, reply);
  if (outcome.action === 'linked' || outcome.action === 'already_linked') {
    return { action: outcome.action, merchantId: outcome.merchantId, chatId };
  }
  return { action: outcome.action, chatId };
}

type LinkOutcome =
  | { action: 'linked' | 'already_linked'; merchantId: string; merchantName: string }
  | { action: 'expired_token' | 'invalid_token' };

async function linkStaffChat(
  db: Executor,
  options: { token: string; chatId: string; username: string | null },
): Promise<LinkOutcome> {
  const run = async (trx: Executor): Promise<LinkOutcome> => {
    // The token row is locked: two chats presenting one token at once link exactly one.
    const link = await trx
      .selectFrom('staff_telegram_links as l')
      .innerJoin('merchants as m', 'm.id', 'l.merchant_id')
      .select(['l.id', 'l.merchant_id', 'l.chat_id', 'l.token_expires_at', 'm.name'])
      .where('l.token_hash', '=', sha256Hex(options.token))
      .forUpdate('l')
      .executeTakeFirst();
    if (!link) return { action: 'invalid_token' };
    const merchant = { merchantId: link.merchant_id, merchantName: link.name };
    if (link.chat_id !== null) {
      // A used token: the same chat pressing the link again is told it is linked, others are refused.
      return link.chat_id === options.chatId
        ? { action: 'already_linked', ...merchant }
        : { action: 'invalid_token' };
    }
    if (link.token_expires_at.getTime() <= Date.now()) return { action: 'expired_token' };
    const existing = await trx
      .selectFrom('staff_telegram_links')
      .select('id')
      .where('merchant_id', '=', link.merchant_id)
      .where('chat_id', '=', options.chatId)
      .executeTakeFirst();
    if (existing) {
      // One link per chat and merchant: the second token is spent without a second row.
      await trx.deleteFrom('staff_telegram_links').where('id', '=', link.id).execute();
      return { action: 'already_linked', ...merchant };
    }
    await trx
      .updateTable('staff_telegram_links')
      .set({ chat_id: options.chatId, telegram_username: options.username, linked_at: new Date() })
      .where('id', '=', link.id)
      .execute();
    return { action: 'linked', ...merchant };
  };
  try {
    return db.isTransaction ? await run(db) : await db.transaction().execute(run);
  } catch (error) {
    // Two different tokens of one merchant linking the same chat at once: the unique index lets
    // one win; the other chat is, in effect, already linked.
    if (isUniqueViolation(error)) {
      const row = await db
        .selectFrom('staff_telegram_links as l')
        .innerJoin('merchants as m', 'm.id', 'l.merchant_id')
        .select(['l.merchant_id', 'm.name'])
        .where('l.chat_id', '=', options.chatId)
        .orderBy('l.linked_at', 'desc')
        .executeTakeFirst();
      if (row) return { action: 'already_linked', merchantId: row.merchant_id, merchantName: row.name };
    }
    throw error;
  }
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === '23505';
}

/** The chat ids linked to a merchant's staff notifications, oldest link first. */
export async function listStaffChats(db: Executor, merchantId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('staff_telegram_links')
    .select('chat_id')
    .where('merchant_id', '=', merchantId)
    .where('chat_id', 'is not', null)
    .orderBy('linked_at')
    .execute();
  return rows.flatMap((r) => (r.chat_id === null ? [] : [r.chat_id]));
}

/** The URL Telegram posts the notify bot's updates to. */
export function notifyWebhookUrl(apiBaseUrl: string): string {
  return `${trimSlash(apiBaseUrl)}/telegram/notify/webhook`;
}

/**
 * Registers the notify bot's webhook at API_BASE_URL with TELEGRAM_NOTIFY_WEBHOOK_SECRET (CLI and
 * start-up). Throws naming the missing variable, or Telegram's answer when it refuses.
 */
export async function registerNotifyWebhook(
  config: Pick<
    Config,
    'API_BASE_URL' | 'TELEGRAM_API_BASE_URL' | 'TELEGRAM_NOTIFY_BOT_TOKEN' | 'TELEGRAM_NOTIFY_WEBHOOK_SECRET'
  >,
): Promise<{ url: string; allowedUpdates: string[] }> {
  const missing = [
    config.TELEGRAM_NOTIFY_BOT_TOKEN ? null : 'TELEGRAM_NOTIFY_BOT_TOKEN',
    // Without a secret anyone could post fake updates; our route refuses every update without it.
    config.TELEGRAM_NOTIFY_WEBHOOK_SECRET ? null : 'TELEGRAM_NOTIFY_WEBHOOK_SECRET',
    config.API_BASE_URL ? null : 'API_BASE_URL',
  ].filter((v) => v !== null);
  const token = config.TELEGRAM_NOTIFY_BOT_TOKEN;
  const secret = config.TELEGRAM_NOTIFY_WEBHOOK_SECRET;
  const base = config.API_BASE_URL;
  if (missing.length > 0 || !token || !secret || !base) {
    throw new Error(`Cannot register the notify bot webhook: set ${missing.join(', ')}`);
  }
  const url = notifyWebhookUrl(base);
  try {
    await callTelegram(token, config.TELEGRAM_API_BASE_URL).setWebhook(url, {
      secret_token: secret,
      allowed_updates: [...ALLOWED_UPDATES],
    });
  } catch (error) {
    throw new Error(`setWebhook for the notify bot failed: ${describeTelegramError(error, token)}`);
  }
  return { url, allowedUpdates: [...ALLOWED_UPDATES] };
}
