import { AuthClient } from '../lib/api';
import type { BreakdownLine } from './campaignForm';

/** The portal's API client (merchant staff session). */
export const portalApi = new AuthClient('/api/v1/portal', 'loyalty.portal.session');

export interface Me {
  id: string;
  email: string;
  name: string | null;
  role: string;
  locale: string;
  merchantId: string;
  merchantName: string | null;
  /** The merchant's settings; timeZone is IANA (Europe/Moscow by default). */
  merchant?: { timeZone?: string };
}

export interface DayFigures {
  date: string;
  purchases: number;
  revenue: number;
  pointsEarned: number;
  pointsRedeemed: number;
  newCustomers: number;
  returningCustomers: number;
}

export interface Dashboard {
  totals: Omit<DayFigures, 'date'>;
  byDay: DayFigures[];
  byOutlet: Array<{
    outletId: string | null;
    name: string | null;
    purchases: number;
    revenue: number;
    pointsEarned: number;
    pointsRedeemed: number;
  }>;
  /** The zone the days are counted in. */
  timeZone: string;
  /** Points and revenue by campaign (the whole merchant), most points first. */
  campaigns: Array<{
    campaignId: string;
    name: string | null;
    kind: string | null;
    points: number;
    purchases: number;
    customers: number;
    revenue: number;
  }>;
}

export interface Tier {
  name: string;
  minSpend: number;
  earnRateBp: number;
}

export interface Rules {
  earnRateBp: number;
  maxRedeemShareBp: number;
  pointValueMinor: number;
  pointsLifetimeDays: number | null;
  pendingDays: number;
  tierWindowDays: number;
  tiers: Tier[];
  excludedCategories: string[];
}

export interface Preview {
  earnPoints: number;
  maxRedeemPoints: number;
  redeemPoints: number;
  discount: number;
  payable: number;
  eligibleAmount: number;
  earnRateBp: number;
  tier: string | { name: string } | null;
  /** Why earnPoints: base, tier and one line per campaign (an unsaved draft: campaignId null). */
  earnBreakdown: BreakdownLine[];
}

export interface Outlet {
  id: string;
  name: string;
  address: string | null;
  createdAt: string;
}

export interface Device {
  id: string;
  name: string;
  outletId: string | null;
  createdAt: string;
}

export interface Cashier {
  id: string;
  name: string;
  outletId: string | null;
  createdAt: string;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface CustomerRow {
  id: string;
  name: string | null;
  phone: string;
  available: number;
  pending: number;
  held: number;
  createdAt: string;
  lastPurchaseAt: string | null;
}

export interface CustomerTier {
  /** null below the first tier. */
  name: string | null;
  earnRateBp: number;
  spend: number;
  next: { name: string; minSpend: number; remaining?: number } | null;
}

export interface CustomerProfile {
  customer: {
    id: string;
    name: string | null;
    phone: string;
    createdAt: string;
    lastPurchaseAt: string | null;
    hasTelegram?: boolean;
    referralCode?: string;
    birthDate?: string | null;
  };
  balance: { available: number; pending: number; held: number };
  tier: CustomerTier | null;
}

export interface LedgerEntry {
  id: number | string;
  kind: string;
  bucket: string;
  points: number;
  purchaseId: string | null;
  refundId?: string | null;
  orderId: string | null;
  reason: string | null;
  createdAt: string;
}

export interface Transaction {
  id: string;
  orderId: string;
  customerId: string;
  customerPhone: string | null;
  outletId: string | null;
  outletName: string | null;
  total: number;
  discount: number;
  earnedPoints: number;
  redeemedPoints: number;
  refundedAmount: number;
  status: string;
  createdAt: string;
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  enabled: boolean;
  disabledReason: string | null;
  secretPrefix: string;
  previousSecretExpiresAt: string | null;
  createdAt: string;
}

export interface Attempt {
  attempt: number;
  startedAt: string;
  durationMs: number;
  statusCode: number | null;
  result: string;
  error: string | null;
  responseExcerpt: string | null;
}

export interface Delivery {
  eventId: number | string;
  type: string;
  status: string;
  attempts: number;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
  attemptLog: Attempt[];
}

export interface StaffChat {
  id: string;
  chatId: string;
  telegramUsername: string | null;
  linkedAt: string;
}

export interface TelegramState {
  bot: { connected: boolean; username: string | null } | null;
  notifyBot: { username: string | null; configured: boolean };
  staffChats: StaffChat[];
  settings: { largePurchaseMinor: number | null };
}

export interface PortalUser {
  id: string;
  email: string;
  name: string | null;
  role: string;
  locale: string;
  disabled: boolean;
  lastLoginAt: string | null;
  createdAt: string;
}

export interface AuditEntry {
  id: number | string;
  actor: string;
  action: string;
  entityType: string;
  entityId: string | null;
  before: unknown;
  after: unknown;
  ip: string | null;
  createdAt: string;
}

/** Lists may come as {items} or as a bare array; both read the same. */
export function itemsOf<T>(data: { items: T[] } | T[] | null | undefined): T[] {
  if (!data) return [];
  return Array.isArray(data) ? data : data.items;
}
