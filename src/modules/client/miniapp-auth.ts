import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { SecretBox } from '../../lib/crypto.js';
import { findCustomerByTelegramUser, issueCustomerToken } from '../customers/customers.service.js';
import { assertMerchantActive } from '../merchants/merchants.service.js';
import { getMerchantBotToken } from '../telegram/telegram.service.js';

// Telegram Mini App launch data (Telegram.WebApp.initData), validated as Telegram specifies:
// data_check_string = every field but `hash`, sorted by key, "key=value" joined by "\n";
// secret_key = HMAC_SHA256(key = "WebAppData", msg = bot_token);
// hash = hex(HMAC_SHA256(key = secret_key, msg = data_check_string)).
// Only the bot that opened the Mini App knows its token, so a valid hash proves Telegram signed it.

/** How old initData may be before it is refused: a day, so a Mini App left open still signs in. */
export const INIT_DATA_MAX_AGE_SECONDS = 86_400;

/** Clock skew tolerated for an auth_date in the future (the phone's signature is Telegram's clock). */
const FUTURE_SKEW_SECONDS = 300;

const TelegramWebAppUser = z.looseObject({
  id: z.number().int().positive(),
  first_name: z.string().optional(),
  last_name: z.string().optional(),
  username: z.string().optional(),
  language_code: z.string().optional(),
});

/** The Telegram user of a Mini App session (the fields we read; Telegram sends more). */
export type TelegramWebAppUser = z.infer<typeof TelegramWebAppUser>;

/** Why initData was refused. */
export type InitDataFailure =
  | 'malformed'
  | 'missing_hash'
  | 'bad_hash'
  | 'missing_auth_date'
  | 'stale'
  | 'from_future'
  | 'missing_user';

/** The outcome of validateInitData: the signed user, or the reason (with a message for people). */
export type InitDataResult =
  | { ok: true; user: TelegramWebAppUser; authDate: Date; fields: Record<string, string> }
  | { ok: false; reason: InitDataFailure; message: string };

function fail(reason: InitDataFailure, message: string): InitDataResult {
  return { ok: false, reason, message };
}

/** hex(HMAC_SHA256(HMAC_SHA256("WebAppData", botToken), dataCheckString)). */
function signature(dataCheckString: string, botToken: string): Buffer {
  const secretKey = createHmac('sha256', 'WebAppData').update(botToken).digest();
  return createHmac('sha256', secretKey).update(dataCheckString).digest();
}

/**
 * Validates Mini App initData against a bot token: the signature first (nothing unsigned is
 * trusted), then the freshness of auth_date, then the `user` field. Pure: the clock is passed in.
 */
export function validateInitData(
  initData: string,
  botToken: string,
  options: { now: Date; maxAgeSeconds?: number },
): InitDataResult {
  const maxAgeSeconds = options.maxAgeSeconds ?? INIT_DATA_MAX_AGE_SECONDS;
  const fields: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(initData.trim().replace(/^\?/, ''))) {
    // A repeated key would let the signed value and the one we read differ.
    if (Object.hasOwn(fields, key)) return fail('malformed', `initData: field "${key}" appears twice`);
    fields[key] = value;
  }
  const hash = fields.hash;
  if (hash === undefined || hash === '') return fail('missing_hash', 'initData: the hash field is missing');
  if (!/^[0-9a-f]{64}$/i.test(hash)) return fail('bad_hash', 'initData: the signature does not match');

  const dataCheckString = Object.keys(fields)
    .filter((key) => key !== 'hash')
    .sort()
    .map((key) => `${key}=${fields[key]}`)
    .join('\n');
  const expected = signature(dataCheckString, botToken);
  if (!timingSafeEqual(expected, Buffer.from(hash, 'hex'))) {
    return fail('bad_hash', 'initData: the signature does not match (not signed by this bot, or altered)');
  }

  const authDateText = fields.auth_date;
  if (authDateText === undefined || !/^\d{1,12}$/.test(authDateText)) {
    return fail('missing_auth_date', 'initData: auth_date is missing or not a Unix time');
  }
  const authSeconds = Number(authDateText);
  const nowSeconds = Math.floor(options.now.getTime() / 1000);
  if (nowSeconds - authSeconds > maxAgeSeconds) {
    return fail(
      'stale',
      `initData: auth_date is older than ${maxAgeSeconds} seconds; reopen the Mini App from the bot`,
    );
  }
  if (authSeconds - nowSeconds > FUTURE_SKEW_SECONDS) {
    return fail('from_future', 'initData: auth_date is in the future');
  }

  if (fields.user === undefined) return fail('missing_user', 'initData: the user field is missing');
  let user: TelegramWebAppUser;
  try {
    user = TelegramWebAppUser.parse(JSON.parse(fields.user));
  } catch {
    return fail('missing_user', 'initData: the user field is not a Telegram user');
  }
  return { ok: true, user, authDate: new Date(authSeconds * 1000), fields };
}

/** Lifetime of a user token issued to the Mini App. */
export const MINIAPP_TOKEN_TTL_DAYS = 30;

/**
 * Signs a Mini App user in: validates initData with the merchant bot's token, finds the merchant's
 * customer of that Telegram user and issues a user token for the client API.
 */
export async function signInWithMiniApp(
  db: Executor,
  options: { merchantId: string; initData: string; box: SecretBox; now: Date; maxAgeSeconds?: number },
): Promise<{ token: string; customer: { id: string; name: string | null; phone: string } }> {
  const botToken = await getMerchantBotToken(db, options.box, options.merchantId);
  if (!botToken) {
    throw new AppError('bot_not_connected', `Merchant ${options.merchantId} has no Telegram bot connected`);
  }
  const result = validateInitData(options.initData, botToken, options);
  if (!result.ok) throw new AppError('invalid_init_data', result.message, { reason: result.reason });
  // After the signature: only the bot's own users learn that the programme is suspended.
  await assertMerchantActive(db, options.merchantId);
  const customer = await findCustomerByTelegramUser(db, {
    merchantId: options.merchantId,
    telegramUserId: result.user.id,
  });
  if (!customer) {
    throw new AppError(
      'customer_not_registered',
      'You are not registered yet: open the bot, press Start and share your phone number',
    );
  }
  const token = await issueCustomerToken(db, {
    merchantId: options.merchantId,
    customerId: customer.id,
    ttlDays: MINIAPP_TOKEN_TTL_DAYS,
  });
  return { token, customer };
}
