import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { randomDigits, randomSecret, sha256Hex } from '../../lib/tokens.js';

/** How the POS names a customer: exactly one of a one-time code, a phone or an id. */
export type CustomerRef = { code: string } | { phone: string } | { customerId: string };

/** A customer with balance and the spend that decides the tier. */
export interface CustomerState {
  id: string;
  name: string | null;
  phone: string;
  available: number;
  pending: number;
  spend: number;
}

/** Creates a customer with an empty balance; the phone is unique per merchant. */
export async function createCustomer(
  db: Executor,
  options: { merchantId: string; phone: string; name?: string | null; telegramUserId?: number | null },
): Promise<{ id: string; phone: string; name: string | null }> {
  const run = async (trx: Executor) => {
    const customer = await trx
      .insertInto('customers')
      .values({
        merchant_id: options.merchantId,
        phone: options.phone,
        name: options.name ?? null,
        telegram_user_id: options.telegramUserId ?? null,
      })
      .onConflict((oc) => oc.columns(['merchant_id', 'phone']).doNothing())
      .returning(['id', 'phone', 'name'])
      .executeTakeFirst();
    if (!customer)
      throw new AppError('customer_exists', `A customer with phone ${options.phone} already exists`);
    await trx
      .insertInto('balances')
      .values({ customer_id: customer.id, merchant_id: options.merchantId })
      .execute();
    await trx
      .insertInto('outbox_events')
      .values({
        merchant_id: options.merchantId,
        type: 'customer.created',
        payload: JSON.stringify({ customerId: customer.id, phone: customer.phone, occurredAt: new Date() }),
      })
      .execute();
    return customer;
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
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
      expires_at: options.ttlDays ? new Date(Date.now() + options.ttlDays * 86_400_000) : null,
    })
    .execute();
  return token;
}

/** The customer a bearer token stands for; null when unknown, expired or revoked. */
export async function findCustomerByToken(
  db: Executor,
  token: string,
): Promise<{ customerId: string; merchantId: string } | null> {
  const row = await db
    .selectFrom('customer_tokens')
    .select(['customer_id as customerId', 'merchant_id as merchantId'])
    .where('token_hash', '=', sha256Hex(token))
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]))
    .executeTakeFirst();
  return row ?? null;
}

/**
 * Finds a merchant's customer by code, phone or id with balance, in one query. With tierWindowDays
 * the spend over that window (purchases less refunds) is summed too.
 */
export async function findCustomerState(
  db: Executor,
  options: { merchantId: string; ref: CustomerRef; tierWindowDays: number | null },
): Promise<CustomerState | null> {
  const { merchantId, ref } = options;
  const match =
    'code' in ref
      ? sql`c.id = (select customer_id from customer_codes
                    where merchant_id = ${merchantId} and code = ${ref.code}
                      and consumed_at is null and expires_at > now())`
      : 'phone' in ref
        ? sql`c.phone = ${ref.phone}`
        : sql`c.id = ${ref.customerId}`;
  const spend =
    options.tierWindowDays === null
      ? sql`0`
      : sql`(select coalesce(sum(p.total - p.refunded_amount), 0) from purchases p
             where p.customer_id = c.id
               and p.created_at > now() - make_interval(days => ${options.tierWindowDays}))`;
  const result = await sql<CustomerState>`
    select c.id, c.name, c.phone, b.available, b.pending, ${spend}::bigint as spend
    from customers c join balances b on b.customer_id = c.id
    where c.merchant_id = ${merchantId} and ${match}
  `.execute(db);
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

/** A customer's own view: profile, balance and tier (client API and Mini App). */
export async function getCustomerProfile(db: Executor, options: { merchantId: string; customerId: string }) {
  const row = await db
    .selectFrom('customers as c')
    .innerJoin('balances as b', 'b.customer_id', 'c.id')
    .innerJoin('merchants as m', 'm.id', 'c.merchant_id')
    .select([
      'c.id',
      'c.name',
      'c.phone',
      'b.available',
      'b.pending',
      'm.id as merchantId',
      'm.name as merchantName',
    ])
    .where('c.id', '=', options.customerId)
    .where('c.merchant_id', '=', options.merchantId)
    .executeTakeFirst();
  if (!row) throw new AppError('customer_not_found', 'Customer not found');
  return {
    customer: { id: row.id, name: row.name, phone: row.phone },
    merchant: { id: row.merchantId, name: row.merchantName },
    balance: { available: row.available, pending: row.pending },
  };
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
    ])
    .where('e.customer_id', '=', options.customerId)
    .where('e.merchant_id', '=', options.merchantId)
    .orderBy('e.id', 'desc')
    .limit(options.limit);
  if (options.before !== undefined) query = query.where('e.id', '<', options.before);
  return query.execute();
}
