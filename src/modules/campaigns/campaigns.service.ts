import type { Selectable } from 'kysely';
import type { z } from 'zod';
import type { Executor } from '../../db/database.js';
import type { Campaigns } from '../../db/types.js';
import { AppError } from '../../http/errors.js';
import { notifyCacheChange } from '../merchants/merchants.service.js';
import type { RuleCampaign } from './campaigns.rules.js';
import {
  type Campaign,
  CampaignConditions,
  CampaignInput,
  CampaignLimits,
  CampaignSchedule,
  type CreateCampaignBody,
  type DraftCampaign,
  type UpdateCampaignBody,
} from './campaigns.schema.js';

type CampaignRow = Selectable<Campaigns>;

/** The id an unsaved draft campaign has in the rules (its breakdown line shows campaignId null). */
export const UNSAVED_CAMPAIGN_ID = '00000000-0000-0000-0000-000000000000';

function limitsOf(row: CampaignRow): CampaignLimits {
  return CampaignLimits.parse({
    ...(row.limit_per_customer === null ? {} : { perCustomer: row.limit_per_customer }),
    ...(row.limit_total_points === null ? {} : { totalPoints: row.limit_total_points }),
  });
}

/** A stored campaign as the API shows it. */
export function toCampaign(row: CampaignRow): Campaign {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind as Campaign['kind'],
    status: row.status as Campaign['status'],
    startsAt: row.starts_at?.toISOString() ?? null,
    endsAt: row.ends_at?.toISOString() ?? null,
    schedule: row.schedule === null ? null : CampaignSchedule.parse(row.schedule),
    conditions: CampaignConditions.parse(row.conditions),
    effect: row.effect as Record<string, unknown>,
    bonusLifetimeDays: row.bonus_lifetime_days,
    limits: limitsOf(row),
    priority: row.priority,
    exclusive: row.exclusive,
    grantedPoints: row.granted_points,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

function columnsOf(input: CampaignInput) {
  return {
    name: input.name,
    kind: input.kind,
    status: input.status,
    starts_at: input.startsAt === null ? null : new Date(input.startsAt),
    ends_at: input.endsAt === null ? null : new Date(input.endsAt),
    schedule: input.schedule === null ? null : JSON.stringify(input.schedule),
    conditions: JSON.stringify(input.conditions),
    effect: JSON.stringify(input.effect),
    bonus_lifetime_days: input.bonusLifetimeDays,
    limit_per_customer: input.limits.perCustomer ?? null,
    limit_total_points: input.limits.totalPoints ?? null,
    priority: input.priority,
    exclusive: input.exclusive,
  };
}

/** Tells every API process that the merchant's campaigns changed (CampaignCache; sent at commit). */
async function announce(db: Executor, merchantId: string): Promise<void> {
  await notifyCacheChange(db, `campaigns:${merchantId}`);
}

/** The merchant's campaigns, newest first. */
export async function listCampaigns(db: Executor, merchantId: string): Promise<Campaign[]> {
  const rows = await db
    .selectFrom('campaigns')
    .selectAll()
    .where('merchant_id', '=', merchantId)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .execute();
  return rows.map(toCampaign);
}

/** One of the merchant's campaigns; 404 for another merchant's or an unknown id. */
export async function getCampaign(
  db: Executor,
  options: { merchantId: string; id: string; forUpdate?: boolean },
): Promise<Campaign> {
  let query = db
    .selectFrom('campaigns')
    .selectAll()
    .where('id', '=', options.id)
    .where('merchant_id', '=', options.merchantId);
  if (options.forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (!row) throw new AppError('campaign_not_found', 'Campaign not found');
  return toCampaign(row);
}

/** Creates a campaign (validated by CreateCampaignBody). */
export async function createCampaign(
  db: Executor,
  options: { merchantId: string; input: CreateCampaignBody },
): Promise<Campaign> {
  const row = await db
    .insertInto('campaigns')
    .values({ merchant_id: options.merchantId, ...columnsOf(options.input) })
    .returningAll()
    .executeTakeFirstOrThrow();
  await announce(db, options.merchantId);
  return toCampaign(row);
}

function validationError(error: z.ZodError): AppError {
  const issues = error.issues.map((issue) => ({ field: issue.path.join('.'), message: issue.message }));
  const first = issues[0];
  return new AppError('validation_error', first ? `${first.field}: ${first.message}` : 'Invalid campaign', {
    issues,
  });
}

/**
 * Changes some fields of a campaign; the result must be a valid campaign as a whole (e.g. a new
 * kind needs its effect). Returns the campaign before and after.
 */
export async function updateCampaign(
  db: Executor,
  options: { merchantId: string; id: string; patch: UpdateCampaignBody },
): Promise<{ before: Campaign; after: Campaign }> {
  const before = await getCampaign(db, { merchantId: options.merchantId, id: options.id, forUpdate: true });
  const { id: _id, grantedPoints: _granted, createdAt: _created, updatedAt: _updated, ...current } = before;
  const parsed = CampaignInput.safeParse({ ...current, ...options.patch });
  if (!parsed.success) throw validationError(parsed.error);
  const row = await db
    .updateTable('campaigns')
    .set({ ...columnsOf(parsed.data), updated_at: new Date() })
    .where('id', '=', options.id)
    .where('merchant_id', '=', options.merchantId)
    .returningAll()
    .executeTakeFirstOrThrow();
  await announce(db, options.merchantId);
  return { before, after: toCampaign(row) };
}

/** Deletes a campaign; points it granted stay with their customers. Returns what was deleted. */
export async function deleteCampaign(
  db: Executor,
  options: { merchantId: string; id: string },
): Promise<Campaign> {
  const row = await db
    .deleteFrom('campaigns')
    .where('id', '=', options.id)
    .where('merchant_id', '=', options.merchantId)
    .returningAll()
    .executeTakeFirst();
  if (!row) throw new AppError('campaign_not_found', 'Campaign not found');
  await announce(db, options.merchantId);
  return toCampaign(row);
}

/** A stored campaign as the rules take it, with its usage by one customer. */
export function toRuleCampaign(campaign: Campaign, customerGrants = 0): RuleCampaign {
  return {
    ...campaign,
    startsAt: campaign.startsAt === null ? null : new Date(campaign.startsAt),
    endsAt: campaign.endsAt === null ? null : new Date(campaign.endsAt),
    customerGrants,
  };
}

/**
 * A campaign being edited as the rules take it for a preview: active (whatever its status), with
 * the budget its stored campaign has used, for a customer without grants.
 */
export function toDraftRuleCampaign(draft: DraftCampaign, grantedPoints: number): RuleCampaign {
  return {
    id: draft.id ?? UNSAVED_CAMPAIGN_ID,
    name: draft.name,
    kind: draft.kind,
    status: 'active',
    startsAt: draft.startsAt === null ? null : new Date(draft.startsAt),
    endsAt: draft.endsAt === null ? null : new Date(draft.endsAt),
    schedule: draft.schedule,
    conditions: draft.conditions,
    effect: draft.effect,
    limits: draft.limits,
    priority: draft.priority,
    exclusive: draft.exclusive,
    grantedPoints,
    customerGrants: 0,
  };
}

const PURCHASE_KINDS = ['multiplier', 'bonus_points'] as const;

/** Whether a campaign's period (startsAt/endsAt) holds `at`. */
function inPeriod(campaign: Campaign, at: Date): boolean {
  const time = at.getTime();
  return (
    (campaign.startsAt === null || Date.parse(campaign.startsAt) <= time) &&
    (campaign.endsAt === null || Date.parse(campaign.endsAt) > time)
  );
}

/** The customer's grants of the given campaigns (for limits.perCustomer), by campaign id. */
async function findCustomerGrants(
  db: Executor,
  customerId: string | null,
  campaignIds: string[],
): Promise<Map<string, number>> {
  if (customerId === null || campaignIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('campaign_grants')
    .select(['campaign_id', 'grants'])
    .where('customer_id', '=', customerId)
    .where('campaign_id', 'in', campaignIds)
    .execute();
  return new Map(rows.map((row) => [row.campaign_id, row.grants]));
}

/**
 * The active purchase campaigns of each merchant, kept in this process so that a commit does not
 * read them every time. Changes are announced on the cache channel (notifyCacheChange) and clear
 * the cache at once; `ttlMs` bounds the staleness when a notification is missed. What a cached
 * campaign shows may be a few seconds old (its remaining budget, a status just changed): the
 * commit checks status and limits again under lock (loyalty_grant_campaigns), so it never grants
 * more than the campaign allows; periods are checked against the time of each request.
 */
export class CampaignCache {
  private readonly byMerchant = new Map<string, { campaigns: Campaign[]; expiresAt: number }>();
  private readonly reading = new Map<string, Promise<Campaign[]>>();
  // Bumped by clear(): a read that started before a change must not store what it read.
  private generation = 0;

  constructor(
    private readonly db: Executor,
    private readonly ttlMs = 5_000,
  ) {}

  /** Forgets every merchant's campaigns (a campaign changed somewhere, or the listener reconnected). */
  clear(): void {
    this.generation += 1;
    this.byMerchant.clear();
    this.reading.clear();
  }

  /** The merchant's active purchase campaigns, whatever their period. */
  async active(merchantId: string): Promise<Campaign[]> {
    const hit = this.byMerchant.get(merchantId);
    if (hit && hit.expiresAt > Date.now()) return hit.campaigns;
    // Requests that miss together share one read.
    const reading = this.reading.get(merchantId);
    if (reading) return reading;
    const read = this.read(merchantId).finally(() => this.reading.delete(merchantId));
    this.reading.set(merchantId, read);
    return read;
  }

  private async read(merchantId: string): Promise<Campaign[]> {
    const generation = this.generation;
    const startedAt = Date.now();
    const rows = await this.db
      .selectFrom('campaigns')
      .selectAll()
      .where('merchant_id', '=', merchantId)
      .where('status', '=', 'active')
      .where('kind', 'in', PURCHASE_KINDS)
      .execute();
    const campaigns = rows.map(toCampaign);
    if (this.ttlMs > 0 && generation === this.generation) {
      if (this.byMerchant.size > 10_000) this.byMerchant.clear();
      this.byMerchant.set(merchantId, { campaigns, expiresAt: startedAt + this.ttlMs });
    }
    return campaigns;
  }

  /**
   * The merchant's purchase campaigns that are active and within their period at `at`, with the
   * customer's grants (for limits.perCustomer; read only when a campaign has that limit; none for
   * a quote for nobody in particular, customerId null).
   * Schedules and conditions are the rules' business.
   */
  async forPurchase(options: {
    merchantId: string;
    customerId: string | null;
    at: Date;
  }): Promise<RuleCampaign[]> {
    const campaigns = (await this.active(options.merchantId)).filter((c) => inPeriod(c, options.at));
    const limited = campaigns.filter((c) => c.limits.perCustomer !== undefined).map((c) => c.id);
    const grants = await findCustomerGrants(this.db, options.customerId, limited);
    return campaigns.map((c) => toRuleCampaign(c, grants.get(c.id) ?? 0));
  }
}
