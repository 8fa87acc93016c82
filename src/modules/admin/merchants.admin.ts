import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Actor } from '../audit/audit.service.js';
import { createPortalUser } from '../auth/auth.service.js';
import { createMerchant, type MerchantStatus, updateMerchant } from '../merchants/merchants.service.js';
import { runAudited } from '../portal/portal.audit.js';
import { containsText } from '../portal/portal.http.js';
import type { ProgrammeRules } from '../programme/programme.schema.js';

// Merchants as operators manage them: list with usage, create with an owner account, suspend and
// reactivate. Every change is written to the platform's audit log (merchant_id null).

/** How much a merchant uses the platform. */
export interface MerchantUsage {
  customers: number;
  purchases30d: number;
  revenue30d: number;
  apiKeys: number;
  webhookEndpoints: number;
}

function selectMerchants(db: Executor) {
  // Per-merchant subqueries, each on an index (merchant_id or merchant_id, created_at).
  return db.selectFrom('merchants as m').select([
    'm.id',
    'm.name',
    'm.status',
    'm.created_at as createdAt',
    sql<MerchantUsage>`json_build_object(
      'customers', (select count(*) from customers c where c.merchant_id = m.id),
      'purchases30d', (select count(*) from purchases p
                       where p.merchant_id = m.id and p.created_at > now() - interval '30 days'),
      'revenue30d', (select coalesce(sum(p.total - p.refunded_amount), 0) from purchases p
                     where p.merchant_id = m.id and p.created_at > now() - interval '30 days'),
      'apiKeys', (select count(*) from api_keys k where k.merchant_id = m.id and k.revoked_at is null),
      'webhookEndpoints', (select count(*) from webhook_endpoints w where w.merchant_id = m.id)
    )`.as('usage'),
  ]);
}

/** Merchants by name (q: part of the name, or an id), with their usage. */
export async function listMerchants(db: Executor, options: { q?: string; limit: number; offset: number }) {
  const q = options.q?.trim() ?? '';
  const matches = sql<boolean>`(${containsText('m.name', q)} or m.id::text = ${q.toLowerCase()})`;
  const [items, count] = await Promise.all([
    selectMerchants(db)
      .$if(q !== '', (query) => query.where(matches))
      .orderBy('m.name')
      .orderBy('m.id')
      .limit(options.limit)
      .offset(options.offset)
      .execute(),
    db
      .selectFrom('merchants as m')
      .select((eb) => eb.fn.countAll<number>().as('total'))
      .$if(q !== '', (query) => query.where(matches))
      .executeTakeFirst(),
  ]);
  return { items, total: Number(count?.total ?? 0) };
}

/** One merchant with its programme, usage and staff accounts; 404 `merchant_not_found`. */
export async function getMerchantDetail(db: Executor, merchantId: string) {
  const merchant = await selectMerchants(db)
    .select([
      'm.rules',
      'm.updated_at as updatedAt',
      'm.outbox_paused_at as outboxPausedAt',
      'm.telegram_bot_username as telegramBotUsername',
    ])
    .where('m.id', '=', merchantId)
    .executeTakeFirst();
  if (!merchant) throw new AppError('merchant_not_found', `Merchant ${merchantId} not found`);
  const users = await db
    .selectFrom('portal_users')
    .select([
      'id',
      'email',
      'name',
      'role',
      sql<boolean>`disabled_at is not null`.as('disabled'),
      'last_login_at as lastLoginAt',
    ])
    .where('merchant_id', '=', merchantId)
    .orderBy('email')
    .execute();
  return { ...merchant, users };
}

/** Creates a merchant and its first owner account in one transaction. */
export function createMerchantWithOwner(
  db: Executor,
  options: {
    name: string;
    rules?: ProgrammeRules;
    owner: { email: string; password: string; name?: string };
    actor: Actor;
  },
) {
  return runAudited(
    db,
    { actor: options.actor, merchantId: null, action: 'merchant.create', entityType: 'merchant' },
    async (trx) => {
      const merchant = await createMerchant(trx, { name: options.name, rules: options.rules });
      const owner = await createPortalUser(trx, {
        merchantId: merchant.id,
        email: options.owner.email,
        password: options.owner.password,
        name: options.owner.name ?? null,
        role: 'owner',
      });
      const row = await trx
        .selectFrom('merchants')
        .select(['status', 'created_at as createdAt'])
        .where('id', '=', merchant.id)
        .executeTakeFirstOrThrow();
      const result = { merchant: { ...merchant, ...row }, owner };
      return {
        result,
        entityId: merchant.id,
        after: { id: merchant.id, name: merchant.name, rules: merchant.rules, owner },
      };
    },
  );
}

/**
 * Renames, suspends or reactivates a merchant. Suspending also ends its staff's sessions; its API
 * keys are refused on every replica as soon as this commits.
 */
export function changeMerchant(
  db: Executor,
  options: { merchantId: string; name?: string; status?: MerchantStatus; actor: Actor },
) {
  const action =
    options.status === 'suspended'
      ? 'merchant.suspend'
      : options.status === 'active'
        ? 'merchant.activate'
        : 'merchant.update';
  return runAudited(
    db,
    { actor: options.actor, merchantId: null, action, entityType: 'merchant' },
    async (trx) => {
      const before = await trx
        .selectFrom('merchants')
        .select(['id', 'name', 'status'])
        .where('id', '=', options.merchantId)
        .forUpdate()
        .executeTakeFirst();
      if (!before) throw new AppError('merchant_not_found', `Merchant ${options.merchantId} not found`);
      const after = await updateMerchant(trx, options);
      if (options.status === 'suspended' && before.status !== 'suspended') {
        await trx
          .updateTable('refresh_tokens')
          .set({ revoked_at: new Date() })
          .where('revoked_at', 'is', null)
          .where('user_id', 'in', (eb) =>
            eb.selectFrom('portal_users').select('id').where('merchant_id', '=', options.merchantId),
          )
          .execute();
      }
      return { result: after, entityId: options.merchantId, before, after };
    },
  );
}
