import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Actor } from '../audit/audit.service.js';
import { birthDateOf, findCustomerState, listCustomerTransactions } from '../customers/customers.service.js';
import { adjustPoints, type Balance } from '../ledger/ledger.service.js';
import { selectTier } from '../programme/programme.rules.js';
import { runAudited } from './portal.audit.js';
import { containsText, likePattern } from './portal.http.js';
import { getMerchantRules } from './programme.service.js';

// Customers as merchant staff see them: search, profile with tier progress, ledger history, and
// manual adjustments (audited, with the reason kept on the ledger entry).

/** One row of the customer list. */
export interface CustomerListItem {
  id: string;
  name: string | null;
  phone: string;
  available: number;
  pending: number;
  held: number;
  createdAt: Date;
  lastPurchaseAt: Date | null;
}

/** The phone digits a search may mean: as typed, and a Russian 8-prefixed number as +7. */
function phoneDigits(q: string): string[] {
  const digits = q.replace(/\D/g, '');
  if (digits.length < 3) return [];
  return digits.length === 11 && digits.startsWith('8') ? [digits, `7${digits.slice(1)}`] : [digits];
}

/** Searches a merchant's customers by phone digits or name (case-insensitive), newest first. */
export async function searchCustomers(
  db: Executor,
  options: { merchantId: string; q?: string; limit: number; offset: number },
): Promise<{ items: CustomerListItem[]; total: number }> {
  const q = options.q?.trim() ?? '';
  let query = db
    .selectFrom('customers as c')
    .innerJoin('customer_balances as b', 'b.customer_id', 'c.id')
    .where('c.merchant_id', '=', options.merchantId);
  if (q !== '') {
    const digits = phoneDigits(q);
    query = query.where((eb) =>
      eb.or([containsText('c.name', q), ...digits.map((d) => eb('c.phone', 'like', likePattern(d)))]),
    );
  }
  const [items, count] = await Promise.all([
    query
      .select([
        'c.id',
        'c.name',
        'c.phone',
        'b.available',
        'b.pending',
        'b.held',
        'c.created_at as createdAt',
        sql<Date | null>`(select max(p.created_at) from purchases p where p.customer_id = c.id)`.as(
          'lastPurchaseAt',
        ),
      ])
      .orderBy('c.created_at', 'desc')
      .orderBy('c.id', 'desc')
      .limit(options.limit)
      .offset(options.offset)
      // customer_balances is a view: its columns are typed nullable, yet come from balances' non-null ones.
      .$narrowType<{ available: number; pending: number; held: number }>()
      .execute(),
    query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirst(),
  ]);
  return { items, total: Number(count?.total ?? 0) };
}

/** A customer's tier: current (null name below the first tier), spend, and the next tier to reach. */
export interface CustomerTier {
  name: string | null;
  earnRateBp: number;
  spend: number;
  next: { name: string; minSpend: number } | null;
}

/** A customer's profile: who, balance, and tier progress (null when the programme has no tiers). */
export async function getCustomerDetail(db: Executor, options: { merchantId: string; customerId: string }) {
  const rules = await getMerchantRules(db, options.merchantId);
  const hasTiers = rules.tiers.length > 0;
  const [state, row] = await Promise.all([
    findCustomerState(db, {
      merchantId: options.merchantId,
      ref: { customerId: options.customerId },
      tierWindowDays: hasTiers ? rules.tierWindowDays : null,
    }),
    db
      .selectFrom('customers')
      .select([
        'created_at as createdAt',
        'telegram_user_id as telegramUserId',
        'referral_code as referralCode',
        'referred_by as referredBy',
        birthDateOf('birth_date'),
        sql<Date | null>`(select max(p.created_at) from purchases p where p.customer_id = customers.id)`.as(
          'lastPurchaseAt',
        ),
      ])
      .where('id', '=', options.customerId)
      .where('merchant_id', '=', options.merchantId)
      .executeTakeFirst(),
  ]);
  if (!state || !row) throw new AppError('customer_not_found', 'Customer not found');
  let tier: CustomerTier | null = null;
  if (hasTiers) {
    const current = selectTier(rules, state.spend);
    const next = rules.tiers
      .filter((t) => t.minSpend > state.spend)
      .sort((a, b) => a.minSpend - b.minSpend)[0];
    tier = {
      name: current?.name ?? null,
      earnRateBp: current?.earnRateBp ?? rules.earnRateBp,
      spend: state.spend,
      next: next ? { name: next.name, minSpend: next.minSpend } : null,
    };
  }
  return {
    customer: {
      id: state.id,
      name: state.name,
      phone: state.phone,
      createdAt: row.createdAt,
      lastPurchaseAt: row.lastPurchaseAt,
      hasTelegram: row.telegramUserId !== null,
      referralCode: row.referralCode,
      referredBy: row.referredBy,
      birthDate: row.birthDate,
    },
    balance: { available: state.available, pending: state.pending, held: state.held },
    tier,
  };
}

/** A customer's ledger entries, newest first, paged by entry id; 404 for another merchant's customer. */
export async function getCustomerLedger(
  db: Executor,
  options: { merchantId: string; customerId: string; limit: number; before?: number },
) {
  const customer = await db
    .selectFrom('customers')
    .select('id')
    .where('id', '=', options.customerId)
    .where('merchant_id', '=', options.merchantId)
    .executeTakeFirst();
  if (!customer) throw new AppError('customer_not_found', 'Customer not found');
  return listCustomerTransactions(db, options);
}

/** Sets or clears a customer's date of birth (the merchant corrects what the customer gave), audited. */
export async function updateCustomerBirthDate(
  db: Executor,
  options: { merchantId: string; customerId: string; birthDate: string | null; actor: Actor },
): Promise<void> {
  await runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'customer.update',
      entityType: 'customer',
    },
    async (trx) => {
      const before = await trx
        .selectFrom('customers')
        .select(birthDateOf('birth_date'))
        .where('id', '=', options.customerId)
        .where('merchant_id', '=', options.merchantId)
        .forUpdate()
        .executeTakeFirst();
      if (!before) throw new AppError('customer_not_found', 'Customer not found');
      await trx
        .updateTable('customers')
        .set({ birth_date: options.birthDate })
        .where('id', '=', options.customerId)
        .execute();
      return {
        result: undefined,
        entityId: options.customerId,
        before: { birthDate: before.birthDate },
        after: { birthDate: options.birthDate },
      };
    },
  );
}

/** Adds or takes points by hand with a reason; audited with the balance before and after. */
export async function adjustCustomerPoints(
  db: Executor,
  options: { merchantId: string; customerId: string; points: number; reason: string; actor: Actor },
): Promise<Balance> {
  const rules = await getMerchantRules(db, options.merchantId);
  return runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'customer.adjust_points',
      entityType: 'customer',
    },
    async (trx) => {
      const before = await trx
        .selectFrom('balances')
        .select(['available', 'pending', 'held'])
        .where('customer_id', '=', options.customerId)
        .where('merchant_id', '=', options.merchantId)
        .forUpdate()
        .executeTakeFirst();
      if (!before) throw new AppError('customer_not_found', 'Customer not found');
      const balance = await adjustPoints(trx, { ...options, rules });
      return {
        result: balance,
        entityId: options.customerId,
        before: { balance: before },
        after: { balance, points: options.points, reason: options.reason },
      };
    },
  );
}
