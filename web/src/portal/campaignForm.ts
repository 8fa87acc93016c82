import { formatMoneyInput, parseMoney } from '../lib/money.js';

// The campaign form's text fields and the API's campaign, both ways. Pure, so the rules can be
// tested without a browser. The sample receipt's breakdown comes from the server (/programme/preview).

/** What a campaign does; each kind has its own effect fields. */
export const CAMPAIGN_KINDS = ['multiplier', 'bonus_points', 'welcome', 'birthday', 'referral'] as const;
export type CampaignKind = (typeof CAMPAIGN_KINDS)[number];

export const CAMPAIGN_STATUSES = ['draft', 'active', 'paused', 'ended'] as const;
export type CampaignStatus = (typeof CAMPAIGN_STATUSES)[number];

/** The effect fields of each kind, in the order the form shows them. */
export const EFFECT_FIELDS = {
  multiplier: ['multiplierBp'],
  bonus_points: ['points'],
  welcome: ['points'],
  birthday: ['points', 'daysBefore'],
  referral: ['referrerPoints', 'refereePoints'],
} as const satisfies Record<CampaignKind, readonly string[]>;
export type EffectField = (typeof EFFECT_FIELDS)[CampaignKind][number];

/** A campaign as the portal API shows it. */
export interface Campaign {
  id: string;
  name: string;
  kind: CampaignKind;
  status: CampaignStatus;
  startsAt: string | null;
  endsAt: string | null;
  schedule: { weekdays: number[]; from: string; to: string } | null;
  conditions: { outletIds?: string[]; tiers?: string[]; categories?: string[]; minTotal?: number };
  effect: Record<string, unknown>;
  bonusLifetimeDays: number | null;
  limits: { perCustomer?: number; totalPoints?: number };
  priority: number;
  exclusive: boolean;
  grantedPoints?: number;
}

/** What POST /campaigns/{id}/simulate answers. */
export interface Simulation {
  purchases: number;
  customers: number;
  extraPoints: number;
  extraPointsValueMinor: number;
  byDay: Array<{ date: string; purchases?: number; extraPoints?: number; customers?: number }>;
}

/** One line of an earn explanation (the API's earnBreakdown). */
export interface BreakdownLine {
  source: 'base' | 'tier' | 'campaign';
  campaignId: string | null;
  name: string;
  points: number;
}

/** The form as typed: every field a string or a flag, checked by toBody. */
export interface CampaignDraft {
  name: string;
  kind: CampaignKind;
  status: CampaignStatus;
  startsAt: string;
  endsAt: string;
  hasSchedule: boolean;
  weekdays: number[];
  from: string;
  to: string;
  outletIds: string[];
  tiers: string[];
  categories: string;
  minTotal: string;
  effect: Record<EffectField, string>;
  bonusLifetimeDays: string;
  perCustomer: string;
  totalPoints: string;
  priority: string;
  exclusive: boolean;
}

const EMPTY_EFFECT: Record<EffectField, string> = {
  multiplierBp: '2',
  points: '100',
  daysBefore: '0',
  referrerPoints: '100',
  refereePoints: '100',
};

/** A datetime-local value ("2026-12-01T10:00") from an ISO instant, in the browser's zone. */
function toLocalInput(iso: string | null): string {
  if (!iso) return '';
  const date = new Date(iso);
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

/** A multiplier in basis points as the "x" the form shows (20000 -> "2", 15000 -> "1.5"). */
function formatMultiplier(bp: number): string {
  return String(bp / 10_000);
}

/** The form's fields for a campaign, or a new one's defaults. */
export function toDraft(campaign: Campaign | null): CampaignDraft {
  if (!campaign) {
    return {
      name: '',
      kind: 'multiplier',
      status: 'draft',
      startsAt: '',
      endsAt: '',
      hasSchedule: false,
      weekdays: [1, 2, 3, 4, 5, 6, 7],
      from: '00:00',
      to: '00:00',
      outletIds: [],
      tiers: [],
      categories: '',
      minTotal: '',
      effect: { ...EMPTY_EFFECT },
      bonusLifetimeDays: '',
      perCustomer: '',
      totalPoints: '',
      priority: '0',
      exclusive: false,
    };
  }
  const effect = { ...EMPTY_EFFECT };
  for (const field of EFFECT_FIELDS[campaign.kind]) {
    const value = Number(campaign.effect[field] ?? 0);
    effect[field] = field === 'multiplierBp' ? formatMultiplier(value) : String(value);
  }
  return {
    name: campaign.name,
    kind: campaign.kind,
    status: campaign.status,
    startsAt: toLocalInput(campaign.startsAt),
    endsAt: toLocalInput(campaign.endsAt),
    hasSchedule: campaign.schedule !== null,
    weekdays: campaign.schedule?.weekdays ?? [1, 2, 3, 4, 5, 6, 7],
    from: campaign.schedule?.from ?? '00:00',
    to: campaign.schedule?.to ?? '00:00',
    outletIds: campaign.conditions.outletIds ?? [],
    tiers: campaign.conditions.tiers ?? [],
    categories: (campaign.conditions.categories ?? []).join(', '),
    minTotal:
      campaign.conditions.minTotal === undefined ? '' : formatMoneyInput(campaign.conditions.minTotal),
    effect,
    bonusLifetimeDays: campaign.bonusLifetimeDays === null ? '' : String(campaign.bonusLifetimeDays),
    perCustomer: campaign.limits.perCustomer === undefined ? '' : String(campaign.limits.perCustomer),
    totalPoints: campaign.limits.totalPoints === undefined ? '' : String(campaign.limits.totalPoints),
    priority: String(campaign.priority),
    exclusive: campaign.exclusive,
  };
}

/** The body POST and PATCH take (without status on an edit), and the fields that are wrong. */
export type CampaignBody = Omit<Campaign, 'id' | 'grantedPoints'>;
export type DraftErrors = Partial<Record<string, 'required' | 'number' | 'money' | 'order' | 'time'>>;

const WHOLE = /^\d{1,9}$/;
const TIME = /^([01]\d|2[0-3]):[0-5]\d$/;

/** Parses an optional whole number: undefined when empty, null when not a number. */
function optionalWhole(text: string): number | undefined | null {
  const value = text.trim();
  if (value === '') return undefined;
  return WHOLE.test(value) ? Number(value) : null;
}

/** A multiplier typed as "2" or "1,5" in basis points (x2 -> 20000); null when not one. */
export function parseMultiplier(text: string): number | null {
  const match = /^(\d{1,3})(?:[.,](\d{1,4}))?$/.exec(text.trim().replace(/^[xх×]/i, ''));
  if (!match) return null;
  const bp = Number(match[1]) * 10_000 + Number((match[2] ?? '').padEnd(4, '0'));
  return bp >= 10_000 ? bp : null;
}

/** Checks the form and builds the API body; the errors name the fields that stop it. */
export function toBody(draft: CampaignDraft): { body: CampaignBody | null; errors: DraftErrors } {
  const errors: DraftErrors = {};
  if (!draft.name.trim()) errors.name = 'required';
  const effect: Record<string, number> = {};
  for (const field of EFFECT_FIELDS[draft.kind]) {
    const text = draft.effect[field];
    const value =
      field === 'multiplierBp' ? parseMultiplier(text) : WHOLE.test(text.trim()) ? Number(text) : null;
    if (value === null) errors[`effect.${field}`] = 'number';
    else effect[field] = value;
  }
  const startsAt = draft.startsAt ? new Date(draft.startsAt).toISOString() : null;
  const endsAt = draft.endsAt ? new Date(draft.endsAt).toISOString() : null;
  if (startsAt && endsAt && Date.parse(endsAt) <= Date.parse(startsAt)) errors.endsAt = 'order';
  if (draft.hasSchedule) {
    if (draft.weekdays.length === 0) errors.weekdays = 'required';
    if (!TIME.test(draft.from)) errors.from = 'time';
    if (!TIME.test(draft.to)) errors.to = 'time';
  }
  const conditions: Campaign['conditions'] = {};
  if (draft.outletIds.length > 0) conditions.outletIds = draft.outletIds;
  if (draft.tiers.length > 0) conditions.tiers = draft.tiers;
  const categories = draft.categories
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  if (categories.length > 0) conditions.categories = categories;
  if (draft.minTotal.trim()) {
    const minTotal = parseMoney(draft.minTotal);
    if (minTotal === null) errors.minTotal = 'money';
    else conditions.minTotal = minTotal;
  }
  const numbers = {
    bonusLifetimeDays: optionalWhole(draft.bonusLifetimeDays),
    perCustomer: optionalWhole(draft.perCustomer),
    totalPoints: optionalWhole(draft.totalPoints),
  };
  for (const [field, value] of Object.entries(numbers)) if (value === null) errors[field] = 'number';
  const priority = /^-?\d{1,4}$/.test(draft.priority.trim()) ? Number(draft.priority) : null;
  if (priority === null) errors.priority = 'number';
  if (Object.keys(errors).length > 0) return { body: null, errors };
  const limits: Campaign['limits'] = {};
  if (numbers.perCustomer) limits.perCustomer = numbers.perCustomer;
  if (numbers.totalPoints) limits.totalPoints = numbers.totalPoints;
  return {
    errors,
    body: {
      name: draft.name.trim(),
      kind: draft.kind,
      status: draft.status,
      startsAt,
      endsAt,
      schedule: draft.hasSchedule
        ? { weekdays: [...draft.weekdays].sort((a, b) => a - b), from: draft.from, to: draft.to }
        : null,
      conditions,
      effect,
      bonusLifetimeDays: numbers.bonusLifetimeDays ?? null,
      limits,
      priority: priority ?? 0,
      exclusive: draft.exclusive,
    },
  };
}
