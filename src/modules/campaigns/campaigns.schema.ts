import { z } from 'zod';
import { text } from '../../lib/text.js';
import { MAX_AMOUNT_MINOR } from '../programme/programme.schema.js';

/** What a campaign does; each kind has its own `effect`. */
export const CampaignKind = z.enum(['multiplier', 'bonus_points', 'welcome', 'birthday', 'referral']);
export type CampaignKind = z.infer<typeof CampaignKind>;

/** Only `active` campaigns apply. */
export const CampaignStatus = z.enum(['draft', 'active', 'paused', 'ended']);
export type CampaignStatus = z.infer<typeof CampaignStatus>;

const Points = z.int().min(1).max(MAX_AMOUNT_MINOR);

/** The effect of each kind of campaign. */
export const CAMPAIGN_EFFECTS = {
  // 20000 = x2 on the programme's earn of the lines that match the conditions.
  multiplier: z.strictObject({ multiplierBp: z.int().min(10_000).max(1_000_000) }),
  // Once per qualifying purchase.
  bonus_points: z.strictObject({ points: Points }),
  // When a customer joins.
  welcome: z.strictObject({ points: Points }),
  // Once per customer per year, daysBefore the birthday (merchant's time zone).
  birthday: z.strictObject({ points: Points, daysBefore: z.int().min(0).max(60) }),
  // After the referred customer's first purchase.
  referral: z.strictObject({
    referrerPoints: z.int().min(0).max(MAX_AMOUNT_MINOR),
    refereePoints: z.int().min(0).max(MAX_AMOUNT_MINOR),
  }),
} as const satisfies Record<CampaignKind, z.ZodType>;

const HHMM = z.string().regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, 'expected HH:MM (00:00-23:59)');

/**
 * When in the week a campaign applies, on the merchant's clocks: on the ISO weekdays listed
 * (Monday = 1), from `from` until `to`. A window with `to` before `from` crosses midnight and
 * belongs to the day it starts on (Friday 22:00-02:00 is Friday night and early Saturday);
 * `from` = `to` is the whole day.
 */
export const CampaignSchedule = z.strictObject({
  weekdays: z
    .array(z.int().min(1).max(7))
    .min(1)
    .max(7)
    .refine((days) => new Set(days).size === days.length, 'weekdays must not repeat'),
  from: HHMM,
  to: HHMM,
});
export type CampaignSchedule = z.infer<typeof CampaignSchedule>;

/** Which purchases qualify; every condition given must hold (categories: per receipt line). */
export const CampaignConditions = z.strictObject({
  outletIds: z.array(z.uuid()).min(1).max(1000).optional(),
  tiers: z.array(text(1, 64)).min(1).max(20).optional(),
  categories: z.array(text(1, 64)).min(1).max(100).optional(),
  minTotal: z.int().min(0).max(MAX_AMOUNT_MINOR).optional(),
});
export type CampaignConditions = z.infer<typeof CampaignConditions>;

/** perCustomer counts grants per customer; totalPoints is the budget of the whole campaign. */
export const CampaignLimits = z.strictObject({
  perCustomer: z.int().min(1).max(1_000_000).optional(),
  totalPoints: Points.optional(),
});
export type CampaignLimits = z.infer<typeof CampaignLimits>;

const fields = {
  name: text(1, 200),
  kind: CampaignKind,
  status: CampaignStatus,
  startsAt: z.iso.datetime({ offset: true }).nullable(),
  endsAt: z.iso.datetime({ offset: true }).nullable(),
  schedule: CampaignSchedule.nullable(),
  conditions: CampaignConditions,
  effect: z
    .record(z.string(), z.unknown())
    .describe(
      'By kind: multiplier {multiplierBp}, bonus_points {points}, welcome {points}, birthday {points, daysBefore}, referral {referrerPoints, refereePoints}',
    ),
  bonusLifetimeDays: z
    .int()
    .min(1)
    .max(3650)
    .nullable()
    .describe("Lifetime of the campaign's points; null = the programme's"),
  limits: CampaignLimits,
  priority: z.int().min(-1000).max(1000).describe('Higher applies first'),
  exclusive: z.boolean().describe('When it applies, campaigns of lower priority do not'),
};

/** Checks what one field cannot: the effect against the kind, and the period's order. */
function checkCampaign(
  value: { kind?: CampaignKind; effect?: unknown; startsAt?: string | null; endsAt?: string | null },
  ctx: z.RefinementCtx,
): void {
  if (value.kind !== undefined && value.effect !== undefined) {
    const parsed = CAMPAIGN_EFFECTS[value.kind].safeParse(value.effect);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        ctx.addIssue({ code: 'custom', path: ['effect', ...issue.path.map(String)], message: issue.message });
      }
    }
  }
  if (value.startsAt && value.endsAt && Date.parse(value.endsAt) <= Date.parse(value.startsAt)) {
    ctx.addIssue({ code: 'custom', path: ['endsAt'], message: 'endsAt must be after startsAt' });
  }
}

/** A complete campaign definition (what POST takes, and what a PATCH must leave). */
export const CampaignInput = z.strictObject(fields).superRefine(checkCampaign);
export type CampaignInput = z.infer<typeof CampaignInput>;

/** POST /campaigns: status defaults to draft, and the rest to none. */
const createFields = {
  ...fields,
  status: fields.status.default('draft'),
  startsAt: fields.startsAt.default(null),
  endsAt: fields.endsAt.default(null),
  schedule: fields.schedule.default(null),
  conditions: fields.conditions.default({}),
  bonusLifetimeDays: fields.bonusLifetimeDays.default(null),
  limits: fields.limits.default({}),
  priority: fields.priority.default(0),
  exclusive: fields.exclusive.default(false),
};
export const CreateCampaignBody = z.strictObject(createFields).superRefine(checkCampaign);
export type CreateCampaignBody = z.infer<typeof CreateCampaignBody>;

/**
 * A campaign being edited, for a preview: a complete campaign as POST takes it, plus the id of the
 * stored campaign it stands for (that one is left out of the preview, its budget counter kept).
 */
export const DraftCampaign = z
  .strictObject({
    ...createFields,
    id: z.uuid().optional().describe('The stored campaign this draft replaces in the preview'),
  })
  .superRefine(checkCampaign);
export type DraftCampaign = z.infer<typeof DraftCampaign>;

/** PATCH /campaigns/{id}: the fields to change (the result is checked whole). */
export const UpdateCampaignBody = z.strictObject(fields).partial();
export type UpdateCampaignBody = z.infer<typeof UpdateCampaignBody>;

/** A campaign as the API shows it. */
export const Campaign = z.object({
  id: z.uuid(),
  name: z.string(),
  kind: CampaignKind,
  status: CampaignStatus,
  startsAt: z.string().nullable(),
  endsAt: z.string().nullable(),
  schedule: CampaignSchedule.nullable(),
  conditions: CampaignConditions,
  effect: z.record(z.string(), z.unknown()),
  bonusLifetimeDays: z.int().nullable(),
  limits: CampaignLimits,
  priority: z.int(),
  exclusive: z.boolean(),
  grantedPoints: z.int().describe('Points granted so far (counted for campaigns with a totalPoints budget)'),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Campaign = z.infer<typeof Campaign>;

/** One line of an earn explanation; the points of a breakdown add up to earnPoints. */
export const EarnBreakdownItem = z.object({
  source: z.enum(['base', 'tier', 'campaign']),
  campaignId: z.uuid().nullable(),
  name: z.string(),
  points: z.int(),
});
export type EarnBreakdownItem = z.infer<typeof EarnBreakdownItem>;

/** POST /campaigns/{id}/simulate: days in the merchant's time zone, both inclusive. */
export const SimulateCampaignBody = z
  .strictObject({ from: z.iso.date(), to: z.iso.date() })
  .superRefine((body, ctx) => {
    if (body.to < body.from)
      ctx.addIssue({ code: 'custom', path: ['to'], message: 'to must not be before from' });
    else if (Date.parse(body.to) - Date.parse(body.from) > 366 * 86_400_000) {
      ctx.addIssue({ code: 'custom', path: ['to'], message: 'at most 366 days can be simulated at once' });
    }
  });
export type SimulateCampaignBody = z.infer<typeof SimulateCampaignBody>;

/** What a campaign would have added over a period. */
export const SimulationResult = z.object({
  purchases: z.int().describe('Purchases the campaign would have applied to'),
  customers: z.int().describe('Distinct customers among them'),
  extraPoints: z.int(),
  extraPointsValueMinor: z.int().describe('extraPoints at the programme point value, minor units'),
  byDay: z.array(z.object({ date: z.string(), purchases: z.int(), extraPoints: z.int() })),
});
export type SimulationResult = z.infer<typeof SimulationResult>;
