import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Actor } from '../audit/audit.service.js';
import { updateMerchantRules } from '../merchants/merchants.service.js';
import { type QuoteResult, quotePurchase, RuleViolation } from '../programme/programme.rules.js';
import { MAX_AMOUNT_MINOR, ProgrammeRules, type Receipt } from '../programme/programme.schema.js';
import { runAudited } from './portal.audit.js';

/** A merchant's programme rules (validated: rows written before a schema change fail loudly here). */
export async function getMerchantRules(db: Executor, merchantId: string): Promise<ProgrammeRules> {
  const row = await db
    .selectFrom('merchants')
    .select('rules')
    .where('id', '=', merchantId)
    .executeTakeFirst();
  if (!row) throw new AppError('merchant_not_found', 'Merchant not found');
  return ProgrammeRules.parse(row.rules);
}

/** Replaces the programme rules, recording the old and new rules in the audit log. */
export async function saveProgrammeRules(
  db: Executor,
  options: { merchantId: string; rules: ProgrammeRules; actor: Actor },
): Promise<ProgrammeRules> {
  return runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'programme.update',
      entityType: 'programme',
    },
    async (trx) => {
      // Locks the merchant row so two concurrent saves record a true before/after chain.
      const current = await trx
        .selectFrom('merchants')
        .select('rules')
        .where('id', '=', options.merchantId)
        .forUpdate()
        .executeTakeFirst();
      if (!current) throw new AppError('merchant_not_found', 'Merchant not found');
      const rules = await updateMerchantRules(trx, { merchantId: options.merchantId, rules: options.rules });
      return { result: rules, entityId: options.merchantId, before: current.rules, after: rules };
    },
  );
}

/**
 * What a sample receipt earns and redeems under the given rules (or the merchant's current ones):
 * the very computation the integration quote and commit use. Without availablePoints the customer
 * is assumed to have enough points for any redemption the receipt allows.
 */
export async function previewQuote(
  db: Executor,
  options: {
    merchantId: string;
    rules?: ProgrammeRules;
    receipt: Receipt;
    redeemPoints?: number;
    availablePoints?: number;
    tierSpend?: number;
  },
): Promise<QuoteResult> {
  const rules = options.rules ?? (await getMerchantRules(db, options.merchantId));
  try {
    return quotePurchase({
      rules,
      receipt: options.receipt,
      redeemPoints: options.redeemPoints ?? 0,
      availablePoints: options.availablePoints ?? MAX_AMOUNT_MINOR,
      tierSpend: options.tierSpend ?? 0,
    });
  } catch (error) {
    if (error instanceof RuleViolation) throw new AppError(error.code, error.message, error.details);
    throw error;
  }
}
