import type { Executor } from '../../db/database.js';
import type { SecretBox } from '../../lib/crypto.js';
import {
  findReferrer,
  listCustomerTransactions,
  REFERRAL_START_PREFIX,
} from '../customers/customers.service.js';
import type { HistoryEntry } from './bot.messages.js';

/** A merchant's connected customer bot, with its token unsealed. */
export interface MerchantBot {
  merchantId: string;
  merchantName: string;
  username: string;
  token: string;
}

/** The merchant's customer bot; null when the merchant does not exist or has no bot connected. */
export async function findMerchantBot(
  db: Executor,
  options: { merchantId: string; box: SecretBox },
): Promise<MerchantBot | null> {
  const row = await db
    .selectFrom('merchants')
    .select(['id', 'name', 'telegram_bot_token_enc', 'telegram_bot_username'])
    .where('id', '=', options.merchantId)
    .executeTakeFirst();
  if (!row?.telegram_bot_token_enc || !row.telegram_bot_username) return null;
  return {
    merchantId: row.id,
    merchantName: row.name,
    username: row.telegram_bot_username,
    token: options.box.open(row.telegram_bot_token_enc),
  };
}

/** Whether the merchant has a customer bot connected (without opening its token). */
export async function hasMerchantBot(db: Executor, merchantId: string): Promise<boolean> {
  const row = await db
    .selectFrom('merchants')
    .select('telegram_bot_token_enc')
    .where('id', '=', merchantId)
    .executeTakeFirst();
  return Boolean(row?.telegram_bot_token_enc);
}

/**
 * The Mini App's URL for a merchant, or null when it cannot be opened from Telegram: without
 * API_BASE_URL, or when it is not https (Telegram refuses web_app buttons to other URLs).
 */
export function miniAppUrl(apiBaseUrl: string | undefined, merchantId: string): string | null {
  if (!apiBaseUrl?.startsWith('https://')) return null;
  return `${apiBaseUrl.replace(/\/+$/, '')}/miniapp?m=${encodeURIComponent(merchantId)}`;
}

/**
 * A customer's latest ledger entries for the bot's history, newest first. An activation is shown
 * once (points becoming available), not as its two legs (pending out, available in).
 */
export async function listRecentHistory(
  db: Executor,
  options: { merchantId: string; customerId: string; limit?: number },
): Promise<HistoryEntry[]> {
  const limit = options.limit ?? 10;
  // Each activation adds one hidden leg, so twice the limit always yields enough shown entries.
  const rows = await listCustomerTransactions(db, {
    merchantId: options.merchantId,
    customerId: options.customerId,
    limit: limit * 2,
  });
  return rows
    .filter((r) => !(r.kind === 'activate' && r.bucket === 'pending'))
    .slice(0, limit)
    .map((r) => ({
      kind: r.kind,
      bucket: r.bucket,
      points: r.points,
      orderId: r.orderId,
      reason: r.reason,
      createdAt: r.createdAt,
    }));
}

/**
 * Keeps the customer whose referral link (start parameter ref_<code>) a Telegram user opened the
 * merchant's bot with, until the user shares their phone and joins (registerTelegramCustomer). A
 * later link replaces an earlier one; another start parameter or an unknown code is ignored.
 */
export async function rememberBotReferral(
  db: Executor,
  options: { merchantId: string; telegramUserId: number; startParameter: string },
): Promise<void> {
  const parameter = options.startParameter.trim();
  if (!parameter.startsWith(REFERRAL_START_PREFIX)) return;
  const referrerId = await findReferrer(db, {
    merchantId: options.merchantId,
    referralCode: parameter.slice(REFERRAL_START_PREFIX.length),
  });
  if (!referrerId) return;
  await db
    .insertInto('bot_referrals')
    .values({
      merchant_id: options.merchantId,
      telegram_user_id: options.telegramUserId,
      referrer_id: referrerId,
    })
    .onConflict((oc) =>
      oc
        .columns(['merchant_id', 'telegram_user_id'])
        .doUpdateSet({ referrer_id: referrerId, created_at: new Date() }),
    )
    .execute();
}
