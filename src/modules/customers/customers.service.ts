import { sql } from 'kysely';
import { type Executor, prepared } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { randomDigits, randomSecret, sha256Hex } from '../../lib/tokens.js';
import type { EarnBreakdownItem } from '../campaigns/campaigns.schema.js';
import { selectTier } from '../programme/programme.rules.js';
import { ProgrammeRules, type Tier } from '../programme/programme.schema.js';

/** A customer's date of birth as the API shows it ('YYYY-MM-DD', no time zone), selected as birthDate. */
export function birthDateOf(column: 'birth_date' | 'c.birth_date') {
  return sql<string | null>`to_char(${sql.ref(column)}, 'YYYY-MM-DD')`.as('birthDate');
}

/** How the POS names a customer: exactly one of a one-time code, a phone or an id. */
export type CustomerRef = { code: string } | { phone: string } | { customerId: string };

/** A customer with balance and the spend that decides the tier. */
export interface CustomerState {
  id: string;
  name: string | null;
  phone: string;
  available: number;
  pending: number;
  held: number;
  spend: number;
}

/** How a customer joined: the customer.enrolled event's `source`. */
export type EnrollmentSource = 'bot' | 'pos' | 'cli' | 'demo';

/** A customer who just joined: the balance includes the welcome points granted on joining. */
export interface EnrolledCustomer {
  id: string;
  phone: string;
  name: string | null;
  referralCode: string;
  referredBy: string | null;
  welcomePoints: number;
  balance: { available: number; pending: number; held: number };
}

/** A referral code as customers type it: letters in upper case, spaces and dashes dropped. */
export function normalizeReferralCode(code: string): string {
  return code.replace(/[\s-]+/g, '').toUpperCase();
}

/**
 * The link a customer shares to bring a friend: it opens the merchant's bot with the code as the start
 * parameter (the bot keeps it until the friend joins). Null while the merchant has no bot connected.
 */
export function referralLink(botUsername: string | null, referralCode: string): string | null {
  return botUsername ? `https://t.me/${botUsername}?start=${REFERRAL_START_PREFIX}${referralCode}` : null;
}

/** The bot's start parameter of a referral link: ref_<code>. */
export const REFERRAL_START_PREFIX = 'ref_';

/** The merchant's customer whose referral code this is; null when none. */
export async function findReferrer(
  db: Executor,
  options: { merchantId: string; referralCode: string },
): Promise<string | null> {
  const row = await db
    .selectFrom('customers')
    .select('id')
    .where('merchant_id', '=', options.merchantId)
    .where('referral_code', '=', normalizeReferralCode(options.referralCode))
    .executeTakeFirst();
  return row?.id ?? null;
}

/**
 * Creates (enrolls) a customer with an empty balance, in one transaction with everything joining
 * does: a referral code (the column default), the referrer (a customer of the same merchant), the
 * welcome campaigns' points (loyalty_grant_occasion, once per campaign) and the customer.created and
 * customer.enrolled events. The phone is unique per merchant: an existing one is customer_exists
 * with its id in details, also for the losers of parallel enrollments of one phone (the insert
 * waits for the first one to commit).
 */
export async function createCustomer(
  db: Executor,
  options: {
    merchantId: string;
    phone: string;
    name?: string | null;
    telegramUserId?: number | null;
    birthDate?: string | null;
    referredBy?: string | null;
    /** How the customer joined (default cli: operator commands and scripts). */
    source?: EnrollmentSource;
  },
): Promise<EnrolledCustomer> {
  const run = async (trx: Executor): Promise<EnrolledCustomer> => {
    const customer = await insertCustomer(trx, options);
    await trx
      .insertInto('balances')
      .values({ customer_id: customer.id, merchant_id: options.merchantId })
      .execute();
    const { rows } = await sql<{ points: number }>`
      select loyalty_grant_occasion(${options.merchantId}, ${customer.id}, 'welcome', 'welcome', 'points', null)
               as points`.execute(trx);
    // The customer is new in this transaction, so the balance is exactly the welcome points (bonus
    // lots are available at once); no other transaction can have changed it.
    const points = Number(rows[0]?.points ?? 0);
    const granted = { points, balance: { available: points, pending: 0, held: 0 } };
    const enrolled: EnrolledCustomer = {
      id: customer.id,
      phone: customer.phone,
      name: customer.name,
      referralCode: customer.referral_code,
      referredBy: customer.referred_by,
      welcomePoints: Number(granted.points),
      balance: granted.balance,
    };
    const occurredAt = new Date();
    await trx
      .insertInto('outbox_events')
      .values([
        {
          merchant_id: options.merchantId,
          type: 'customer.created',
          payload: JSON.stringify({ customerId: customer.id, phone: customer.phone, occurredAt }),
        },
        {
          merchant_id: options.merchantId,
          type: 'customer.enrolled',
          payload: JSON.stringify({
            customerId: enrolled.id,
            phone: enrolled.phone,
            name: enrolled.name,
            source: options.source ?? 'cli',
            referredBy: enrolled.referredBy,
            referralCode: enrolled.referralCode,
            welcomePoints: enrolled.welcomePoints,
            balance: enrolled.balance,
            occurredAt,
          }),
        },
      ])
      .execute();
    return enrolled;
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}

/**
 * Inserts the customer row. Any unique conflict leaves it out: the phone's or the Telegram user's
 * (customer_exists), or, about once in 10^11, the referral code the column default drew (drawn again).
 */
async function insertCustomer(trx: Executor, options: Parameters<typeof createCustomer>[1]) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const customer = await trx
      .insertInto('customers')
      .values({
        merchant_id: options.merchantId,
        phone: options.phone,
        name: options.name ?? null,
        telegram_user_id: options.telegramUserId ?? null,
        birth_date: options.birthDate ?? null,
        referred_by: options.referredBy ?? null,
      })
      .onConflict((oc) => oc.doNothing())
      .returning(['id', 'phone', 'name', 'referral_code', 'referred_by'])
      .executeTakeFirst();
    if (customer) return customer;
    const existing = await trx
      .selectFrom('customers')
      .select('id')
      .where('merchant_id', '=', options.merchantId)
      .where((eb) =>
        eb.or([eb('phone', '=', options.phone), eb('telegram_user_id', '=', options.telegramUserId ?? null)]),
      )
      .executeTakeFirst();
    if (existing) {
      throw new AppError('customer_exists', `A customer with phone ${options.phone} already exists`, {
        customerId: existing.id,
      });
    }
  }
  throw new AppError('unavailable', 'No free referral code right now, try again');
}

/** Issues a bearer token for a customer (client API); only its SHA-256 is stored. */
export async function issueCustomerToken(
  db: Executor,
  options: { merchantId: string; customerId: string; ttlDays?: number },
): Promise<string> {
  const found = await db
    .selectFrom('customers')
    .select('id')
    .where('id', '=', options.customerId)
    .where('merchant_id', '=', options.merchantId)
    .executeTakeFirst();
  if (!found) throw new AppError('customer_not_found', 'Customer not found');
  const token = randomSecret('lu_', 32);
  await db
    .insertInto('customer_tokens')
    .values({
      token_hash: sha256Hex(token),
      customer_id: options.customerId,
      merchant_id: options.merchantId,
      // PostgreSQL's now(), the clock the lookup below compares with.
      expires_at: options.ttlDays ? sql<Date>`now() + make_interval(days => ${options.ttlDays})` : null,
    })
    .execute();
  return token;
}

/** The customer a bearer token stands for; null when unknown, expired or revoked. */
export async function findCustomerByToken(
  db: Executor,
  token: string,
): Promise<{ customerId: string; merchantId: string; merchantStatus: string } | null> {
  const row = await db
    .selectFrom('customer_tokens as t')
    .innerJoin('merchants as m', 'm.id', 't.merchant_id')
    .select(['t.customer_id as customerId', 't.merchant_id as merchantId', 'm.status as merchantStatus'])
    .where('t.token_hash', '=', sha256Hex(token))
    .where('t.revoked_at', 'is', null)
    .where((eb) => eb.or([eb('t.expires_at', 'is', null), eb('t.expires_at', '>', sql<Date>`now()`)]))
    .executeTakeFirst();
  return row ?? null;
}

/**
 * The statement that finds a merchant's customer by code, phone or id with balance (the columns of
 * CustomerState; no row when there is none). With tierWindowDays the spend over that window
 * (purchases less refunds) is summed too. The query is loyalty_customer_state's, whose plans are
 * prepared once per connection.
 */
export function customerStateQuery(options: {
  merchantId: string;
  ref: CustomerRef;
  tierWindowDays: number | null;
}) {
  const { ref } = options;
  return sql<CustomerState>`
    select * from loyalty_customer_state(${options.merchantId}, ${'customerId' in ref ? ref.customerId : null},
      ${'phone' in ref ? ref.phone : null}, ${'code' in ref ? ref.code : null}, ${options.tierWindowDays})
  `;
}

/** Finds a merchant's customer by code, phone or id with balance, in one query (customerStateQuery). */
export async function findCustomerState(
  db: Executor,
  options: { merchantId: string; ref: CustomerRef; tierWindowDays: number | null },
): Promise<CustomerState | null> {
  const result = await prepared(customerStateQuery(options)).execute(db);
  return result.rows[0] ?? null;
}

/**
 * Issues a fresh 6-digit code for a customer, replacing their previous live codes. A code is unique
 * among the merchant's live codes: the insert takes over a code only when it is expired or used.
 */
export async function issueCustomerCode(
  db: Executor,
  options: { merchantId: string; customerId: string; ttlSeconds: number },
): Promise<{ code: string; expiresAt: Date; ttlSeconds: number }> {
  await db
    .deleteFrom('customer_codes')
    .where('customer_id', '=', options.customerId)
    .where('consumed_at', 'is', null)
    .execute();
  for (let attempt = 0; attempt < 20; attempt++) {
    const code = randomDigits(6);
    const row = await sql<{ expires_at: Date }>`
      insert into customer_codes (merchant_id, code, customer_id, expires_at)
      values (${options.merchantId}, ${code}, ${options.customerId},
              now() + make_interval(secs => ${options.ttlSeconds}))
      on conflict (merchant_id, code) do update
        set customer_id = excluded.customer_id, expires_at = excluded.expires_at,
            consumed_at = null, purchase_id = null, created_at = now()
        where customer_codes.expires_at <= now() or customer_codes.consumed_at is not null
      returning expires_at
    `.execute(db);
    const issued = row.rows[0];
    if (issued) return { code, expiresAt: issued.expires_at, ttlSeconds: options.ttlSeconds };
  }
  // A million codes per merchant; twenty collisions in a row means the space is nearly full.
  throw new AppError('unavailable', 'No free customer code right now, try again');
}

/** A customer's own view: profile, balance, tier progress and programme (client API and Mini App). */
export async function getCustomerProfile(db: Executor, options: { merchantId: string; customerId: string }) {
  // Spend over the programme's tier window is summed as the ledger sums it for tier selection
  // (findCustomerState), so the tier shown is the tier the next purchase earns at.
  const row = await db
    .selectFrom('customers as c')
    .innerJoin('customer_balances as b', 'b.customer_id', 'c.id')
    .innerJoin('merchants as m', 'm.id', 'c.merchant_id')
    .select([
      'c.id',
      'c.name',
      'c.phone',
      'c.referral_code as referralCode',
      birthDateOf('c.birth_date'),
      'b.available',
      'b.pending',
      'b.held',
      'm.id as merchantId',
      'm.telegram_bot_username as botUsername',
      'm.name as merchantName',
      'm.rules',
      sql<number>`(select coalesce(sum(p.total - p.refunded_amount), 0) from purchases p
                   where p.customer_id = c.id
                     and p.created_at > now() - make_interval(days => (m.rules->>'tierWindowDays')::int))`.as(
        'spend',
      ),
    ])
    .where('c.id', '=', options.customerId)
    .where('c.merchant_id', '=', options.merchantId)
    // customer_balances is a view: its columns are typed nullable, yet come from balances' non-null ones.
    .$narrowType<{ available: number; pending: number; held: number }>()
    .executeTakeFirst();
  if (!row) throw new AppError('customer_not_found', 'Customer not found');
  const rules = ProgrammeRules.parse(row.rules);
  return {
    customer: {
      id: row.id,
      name: row.name,
      phone: row.phone,
      referralCode: row.referralCode,
      birthDate: row.birthDate,
    },
    merchant: { id: row.merchantId, name: row.merchantName },
    balance: { available: row.available, pending: row.pending, held: row.held },
    tier: describeTierProgress(rules, Number(row.spend)),
    programme: { pointValueMinor: rules.pointValueMinor, earnRateBp: rules.earnRateBp },
    referralCode: row.referralCode,
    referralLink: referralLink(row.botUsername, row.referralCode),
  };
}

/** Where a customer stands among the programme's tiers; `name` is null below the first tier. */
export interface TierProgress {
  name: string | null;
  /** The earn rate that applies now: the tier's, or the base rate below the first tier. */
  earnRateBp: number;
  /** Spend (minor units, purchases less refunds) within the tier window. */
  spend: number;
  /** The next tier up and the spend still missing to reach it; null at the top tier. */
  next: { name: string; minSpend: number; remaining: number } | null;
}

/** Tier progress for a spend; null when the programme has no tiers. */
export function describeTierProgress(rules: ProgrammeRules, spend: number): TierProgress | null {
  if (rules.tiers.length === 0) return null;
  const current = selectTier(rules, spend);
  let next: Tier | null = null;
  for (const tier of rules.tiers) {
    if (tier.minSpend > spend && (next === null || tier.minSpend < next.minSpend)) next = tier;
  }
  return {
    name: current?.name ?? null,
    earnRateBp: current?.earnRateBp ?? rules.earnRateBp,
    spend,
    next: next ? { name: next.name, minSpend: next.minSpend, remaining: next.minSpend - spend } : null,
  };
}

/** A merchant's customer linked to a Telegram user; null when that user has not registered. */
export async function findCustomerByTelegramUser(
  db: Executor,
  options: { merchantId: string; telegramUserId: number },
): Promise<{ id: string; name: string | null; phone: string } | null> {
  const row = await db
    .selectFrom('customers')
    .select(['id', 'name', 'phone'])
    .where('merchant_id', '=', options.merchantId)
    .where('telegram_user_id', '=', options.telegramUserId)
    .executeTakeFirst();
  return row ?? null;
}

/** What registerTelegramCustomer did. */
export type TelegramRegistration = {
  customer: { id: string; name: string | null; phone: string };
  /**
   * created: a new customer; linked: the customer with that phone (e.g. made at the till) now has
   * this Telegram user; already_registered: the Telegram user already had a customer (kept as is,
   * even when the shared phone differs: a phone change is not done by sharing a contact).
   */
  outcome: 'created' | 'linked' | 'already_registered';
};

/**
 * Registers a Telegram user by the phone they shared with the merchant's bot: links the merchant's
 * customer with that phone (the same phone at the till finds the same customer), or creates one.
 */
export async function registerTelegramCustomer(
  db: Executor,
  options: { merchantId: string; phone: string; telegramUserId: number; name?: string | null },
): Promise<TelegramRegistration> {
  const run = async (trx: Executor): Promise<TelegramRegistration> => {
    const existing = await findCustomerByTelegramUser(trx, options);
    if (existing) return { customer: existing, outcome: 'already_registered' };
    // The phone's customer is locked, so two registrations of one phone link it once.
    const byPhone = await trx
      .selectFrom('customers')
      .select(['id', 'name', 'phone', 'telegram_user_id'])
      .where('merchant_id', '=', options.merchantId)
      .where('phone', '=', options.phone)
      .forUpdate()
      .executeTakeFirst();
    if (byPhone?.telegram_user_id === options.telegramUserId) {
      // The same registration committed by a concurrent update of this user.
      return {
        customer: { id: byPhone.id, name: byPhone.name, phone: byPhone.phone },
        outcome: 'already_registered',
      };
    }
    if (byPhone) {
      // A phone proven by Telegram outranks an older link: a recycled number moves to its new owner.
      const customer = await trx
        .updateTable('customers')
        .set((eb) => ({
          telegram_user_id: options.telegramUserId,
          name: eb.fn.coalesce('name', eb.val(options.name ?? null)),
        }))
        .where('id', '=', byPhone.id)
        .returning(['id', 'name', 'phone'])
        .executeTakeFirstOrThrow();
      return { customer, outcome: 'linked' };
    }
    // The referral link this user started the bot with, if any (rememberBotReferral).
    const referral = await trx
      .deleteFrom('bot_referrals')
      .where('merchant_id', '=', options.merchantId)
      .where('telegram_user_id', '=', options.telegramUserId)
      .returning('referrer_id')
      .executeTakeFirst();
    const created = await createCustomer(trx, {
      ...options,
      name: options.name ?? null,
      referredBy: referral?.referrer_id ?? null,
      source: 'bot',
    });
    const customer = { id: created.id, name: created.name, phone: created.phone };
    return { customer, outcome: 'created' };
  };
  for (let attempt = 1; ; attempt++) {
    try {
      return db.isTransaction ? await run(db) : await db.transaction().execute(run);
    } catch (error) {
      // A concurrent registration of the same phone (customer_exists) or the same Telegram user
      // (unique violation) won the race: the second attempt finds what it committed.
      const isRace =
        (error instanceof AppError && error.code === 'customer_exists') ||
        (typeof error === 'object' && error !== null && 'code' in error && error.code === '23505');
      if (!isRace || attempt >= 2 || db.isTransaction) throw error;
    }
  }
}

/** A customer's ledger entries, newest first, paged by entry id. */
export async function listCustomerTransactions(
  db: Executor,
  options: { merchantId: string; customerId: string; limit: number; before?: number },
) {
  let query = db
    .selectFrom('ledger_entries as e')
    .leftJoin('purchases as p', 'p.id', 'e.purchase_id')
    .select([
      'e.id',
      'e.kind',
      'e.bucket',
      'e.points',
      'e.purchase_id as purchaseId',
      'e.refund_id as refundId',
      'p.order_id as orderId',
      'e.reason',
      'e.created_at as createdAt',
      // A purchase's explanation on its earn and redeem entries (not on its refunds' entries).
      sql<EarnBreakdownItem[] | null>`case when e.kind in ('earn', 'redeem') then p.earn_breakdown end`.as(
        'earnBreakdown',
      ),
    ])
    .where('e.customer_id', '=', options.customerId)
    .where('e.merchant_id', '=', options.merchantId)
    .orderBy('e.id', 'desc')
    .limit(options.limit);
  if (options.before !== undefined) query = query.where('e.id', '<', options.before);
  return query.execute();
}

/**
 * The customer gives their date of birth (the Mini App), for the merchant's birthday campaigns. Once
 * only: a date already given (by the customer, at the till or in the portal) is not replaced, or a
 * customer could move their birthday to collect its bonus again; the merchant corrects it.
 */
export async function setCustomerBirthDate(
  db: Executor,
  options: { merchantId: string; customerId: string; birthDate: string },
): Promise<void> {
  const updated = await db
    .updateTable('customers')
    .set({ birth_date: options.birthDate })
    .where('id', '=', options.customerId)
    .where('merchant_id', '=', options.merchantId)
    .where('birth_date', 'is', null)
    .executeTakeFirst();
  if (updated.numUpdatedRows > 0n) return;
  const customer = await db
    .selectFrom('customers')
    .select(birthDateOf('birth_date'))
    .where('id', '=', options.customerId)
    .where('merchant_id', '=', options.merchantId)
    .executeTakeFirst();
  if (!customer) throw new AppError('customer_not_found', 'Customer not found');
  throw new AppError('birth_date_already_set', 'The date of birth is already set; the shop can correct it', {
    field: 'birthDate',
    birthDate: customer.birthDate,
  });
}
