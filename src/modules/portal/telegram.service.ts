import type { Config } from '../../config.js';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { SecretBox } from '../../lib/crypto.js';
import { type Actor, writeAudit } from '../audit/audit.service.js';
import { callTelegram } from '../telegram/telegram.client.js';
import { connectMerchantBot, createStaffLinkToken } from '../telegram/telegram.service.js';
import { runAudited } from './portal.audit.js';

// Telegram in the portal: the merchant's customer bot (connected by token), staff chats linked to
// the platform's notify bot, and the large-purchase notification threshold. Bot tokens and link
// tokens never reach the audit log.

const RETRY_AFTER_FAILURE_MS = 60_000;

/**
 * The notify bot's username (for t.me deep links), asked from Telegram once (getMe) and kept; a
 * failed call is retried after a minute, so a Telegram outage does not slow every page down.
 */
export class NotifyBotInfo {
  private username: string | null = null;
  private failedAt = 0;
  private pending: Promise<string | null> | null = null;

  constructor(private readonly config: Pick<Config, 'TELEGRAM_NOTIFY_BOT_TOKEN' | 'TELEGRAM_API_BASE_URL'>) {}

  /** Whether TELEGRAM_NOTIFY_BOT_TOKEN is set. */
  get isConfigured(): boolean {
    return Boolean(this.config.TELEGRAM_NOTIFY_BOT_TOKEN);
  }

  /** The bot's username, or null when it is not configured or Telegram did not answer. */
  async getUsername(): Promise<string | null> {
    const token = this.config.TELEGRAM_NOTIFY_BOT_TOKEN;
    if (!token) return null;
    if (this.username) return this.username;
    if (Date.now() - this.failedAt < RETRY_AFTER_FAILURE_MS) return null;
    this.pending ??= callTelegram(token, this.config.TELEGRAM_API_BASE_URL, { timeoutSeconds: 3 })
      .getMe()
      .then((me) => {
        this.username = me.username;
        return me.username;
      })
      .catch(() => {
        this.failedAt = Date.now();
        return null;
      })
      .finally(() => {
        this.pending = null;
      });
    return this.pending;
  }
}

/** The Telegram page: customer bot, notify bot, linked staff chats and notification settings. */
export async function getTelegramStatus(
  db: Executor,
  options: { merchantId: string; notifyBot: NotifyBotInfo },
) {
  const [merchant, chats, notifyUsername] = await Promise.all([
    db
      .selectFrom('merchants')
      .select(['telegram_bot_username', 'telegram_bot_token_enc', 'notify_large_purchase_minor'])
      .where('id', '=', options.merchantId)
      .executeTakeFirst(),
    db
      .selectFrom('staff_telegram_links')
      .select(['id', 'chat_id as chatId', 'telegram_username as telegramUsername', 'linked_at as linkedAt'])
      .where('merchant_id', '=', options.merchantId)
      .where('chat_id', 'is not', null)
      .orderBy('linked_at')
      .execute(),
    options.notifyBot.getUsername(),
  ]);
  if (!merchant) throw new AppError('merchant_not_found', 'Merchant not found');
  return {
    bot: merchant.telegram_bot_token_enc
      ? { connected: true, username: merchant.telegram_bot_username }
      : null,
    notifyBot: { username: notifyUsername, configured: options.notifyBot.isConfigured },
    staffChats: chats.flatMap((c) =>
      c.chatId === null || c.linkedAt === null ? [] : [{ ...c, chatId: c.chatId, linkedAt: c.linkedAt }],
    ),
    settings: { largePurchaseMinor: merchant.notify_large_purchase_minor },
  };
}

/**
 * Connects the merchant's customer bot (getMe, setWebhook when API_BASE_URL is set). No transaction
 * is held across the Telegram calls; the audit entry is written once the bot is stored.
 */
export async function connectBot(
  db: Executor,
  options: { merchantId: string; token: string; config: Config; actor: Actor },
): Promise<{ botId: number; username: string; webhookUrl: string | null }> {
  const before = await db
    .selectFrom('merchants')
    .select('telegram_bot_username as username')
    .where('id', '=', options.merchantId)
    .executeTakeFirst();
  const connected = await connectMerchantBot(db, {
    merchantId: options.merchantId,
    token: options.token,
    apiBaseUrl: options.config.TELEGRAM_API_BASE_URL,
    apiBaseUrlForWebhook: options.config.API_BASE_URL,
    box: new SecretBox(options.config.APP_ENCRYPTION_KEY),
  });
  await writeAudit(db, {
    actor: options.actor,
    merchantId: options.merchantId,
    action: 'telegram.bot_connect',
    entityType: 'telegram_bot',
    entityId: String(connected.botId),
    before: { username: before?.username ?? null },
    after: { username: connected.username, botId: connected.botId, webhookUrl: connected.webhookUrl },
  });
  return connected;
}

/** A one-time link for a staff member to receive notifications from the notify bot. */
export async function createStaffLink(
  db: Executor,
  options: { merchantId: string; actor: Actor; notifyBot: NotifyBotInfo },
): Promise<{ token: string; expiresAt: Date; deepLink: string | null }> {
  const link = await runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'telegram.staff_link_create',
      entityType: 'staff_telegram_link',
    },
    async (trx) => {
      const created = await createStaffLinkToken(trx, { merchantId: options.merchantId });
      return { result: created, after: { expiresAt: created.expiresAt } };
    },
  );
  const username = await options.notifyBot.getUsername();
  return { ...link, deepLink: username ? `https://t.me/${username}?start=${link.token}` : null };
}

/** Unlinks a staff chat: it gets no more notifications. */
export function removeStaffChat(
  db: Executor,
  options: { merchantId: string; id: string; actor: Actor },
): Promise<void> {
  return runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'telegram.staff_chat_delete',
      entityType: 'staff_telegram_link',
    },
    async (trx) => {
      const row = await trx
        .deleteFrom('staff_telegram_links')
        .where('id', '=', options.id)
        .where('merchant_id', '=', options.merchantId)
        .where('chat_id', 'is not', null)
        .returning(['chat_id as chatId', 'telegram_username as telegramUsername', 'linked_at as linkedAt'])
        .executeTakeFirst();
      if (!row) throw new AppError('not_found', 'Staff chat not found');
      return { result: undefined, entityId: options.id, before: row };
    },
  );
}

/** Sets the receipt total from which staff chats are told about a purchase (null: never). */
export function updateTelegramSettings(
  db: Executor,
  options: { merchantId: string; largePurchaseMinor: number | null; actor: Actor },
): Promise<{ largePurchaseMinor: number | null }> {
  return runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'telegram.settings_update',
      entityType: 'merchant',
    },
    async (trx) => {
      const before = await trx
        .selectFrom('merchants')
        .select('notify_large_purchase_minor as largePurchaseMinor')
        .where('id', '=', options.merchantId)
        .forUpdate()
        .executeTakeFirst();
      if (!before) throw new AppError('merchant_not_found', 'Merchant not found');
      await trx
        .updateTable('merchants')
        .set({ notify_large_purchase_minor: options.largePurchaseMinor, updated_at: new Date() })
        .where('id', '=', options.merchantId)
        .execute();
      const after = { largePurchaseMinor: options.largePurchaseMinor };
      return { result: after, entityId: options.merchantId, before, after };
    },
  );
}
