import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Actor } from '../audit/audit.service.js';
import { createApiKey, revokeApiKey } from '../merchants/merchants.service.js';
import { runAudited } from './portal.audit.js';

/** Issues a key for the merchant; the audit log records its name and prefix, never the key. */
export function issueApiKey(db: Executor, options: { merchantId: string; name: string; actor: Actor }) {
  return runAudited(
    db,
    { actor: options.actor, merchantId: options.merchantId, action: 'api_key.create', entityType: 'api_key' },
    async (trx) => {
      const created = await createApiKey(trx, { merchantId: options.merchantId, name: options.name });
      const after = { id: created.id, name: options.name, prefix: created.prefix };
      return { result: { ...after, key: created.key }, entityId: created.id, after };
    },
  );
}

/** Revokes one of the merchant's keys (every replica stops accepting it when this commits). */
export function revokeMerchantApiKey(
  db: Executor,
  options: { merchantId: string; keyId: string; actor: Actor },
) {
  return runAudited(
    db,
    { actor: options.actor, merchantId: options.merchantId, action: 'api_key.revoke', entityType: 'api_key' },
    async (trx) => {
      const before = await trx
        .selectFrom('api_keys')
        .select(['id', 'name', 'prefix', 'revoked_at as revokedAt'])
        .where('id', '=', options.keyId)
        .where('merchant_id', '=', options.merchantId)
        .executeTakeFirst();
      if (!before) throw new AppError('not_found', 'API key not found');
      await revokeApiKey(trx, { merchantId: options.merchantId, keyId: options.keyId });
      return {
        result: undefined,
        entityId: options.keyId,
        before,
        after: { ...before, revokedAt: new Date() },
      };
    },
  );
}
