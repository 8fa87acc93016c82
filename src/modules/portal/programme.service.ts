import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Actor } from '../audit/audit.service.js';
import type { DraftCampaign } from '../campaigns/campaigns.schema.js';
import {
  CampaignCache,
  getCampaign,
  toDraftRuleCampaign,
  UNSAVED_CAMPAIGN_ID,
} from '../campaigns/campaigns.service.js';
import { type ExplainedQuote, quoteForCustomer } from '../ledger/ledger.service.js';
import { getMerchantTimeZone, updateMerchantRules } from '../merchants/merchants.service.js';
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
 * the very computation the integration quote and commit use, campaigns included: the merchant's
 * purchase campaigns live at `at` (default now) on its clocks, at `outletId`, for a customer with
 * no grants yet. A draft campaign is applied as if active (in place of the stored one it names),
 * nothing is written. Without availablePoints the customer is assumed to have enough points for
 * any redemption the receipt allows.
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
    at?: string;
    outletId?: string;
    campaign?: DraftCampaign;
  },
): Promise<ExplainedQuote> {
  const at = options.at ? new Date(options.at) : new Date();
  const { merchantId, campaign: draft } = options;
  const [rules, timeZone, stored, replaced] = await Promise.all([
    options.rules ?? getMerchantRules(db, merchantId),
    getMerchantTimeZone(db, merchantId),
    // Read afresh (no time to live): the portal previews what is stored now.
    new CampaignCache(db, 0).forPurchase({ merchantId, customerId: null, at }),
    draft?.id ? getCampaign(db, { merchantId, id: draft.id }) : null,
  ]);
  const campaigns = stored.filter((c) => c.id !== draft?.id);
  if (draft) campaigns.push(toDraftRuleCampaign(draft, replaced?.grantedPoints ?? 0));
  const quote = quoteForCustomer({
    rules,
    customer: { available: options.availablePoints ?? MAX_AMOUNT_MINOR, spend: options.tierSpend ?? 0 },
    receipt: options.receipt,
    redeemPoints: options.redeemPoints ?? 0,
    context: { outletId: options.outletId },
    campaigns,
    timeZone,
    at,
  });
  const earnBreakdown = quote.earnBreakdown.map((line) =>
    line.campaignId === UNSAVED_CAMPAIGN_ID ? { ...line, campaignId: null } : line,
  );
  return { ...quote, earnBreakdown };
}
