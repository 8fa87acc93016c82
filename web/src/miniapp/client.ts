import { ApiError, errorFrom, send } from '../lib/api';

/** The customer's profile as GET /api/v1/client/me answers. */
export interface ClientMe {
  customer: { id: string; name: string | null; phone: string; birthDate: string | null };
  merchant: { id: string; name: string };
  balance: { available: number; pending: number; held: number };
  tier: {
    name: string | null;
    earnRateBp: number;
    spend: number;
    next: { name: string; minSpend: number; remaining: number } | null;
  } | null;
  programme: { pointValueMinor: number; earnRateBp: number };
  referralCode: string;
  referralLink: string | null;
}

export interface ClientCode {
  code: string;
  expiresAt: string;
  ttlSeconds: number;
}

export interface ClientEntry {
  id: number;
  kind: string;
  bucket: string;
  points: number;
  purchaseId: string | null;
  orderId: string | null;
  reason: string | null;
  createdAt: string;
  /** On a purchase's earn and redeem entries: why it earned what it did. */
  earnBreakdown?: Array<{
    source: 'base' | 'tier' | 'campaign';
    campaignId: string | null;
    name: string;
    points: number;
  }> | null;
}

/** An offer as GET /offers shows it (description in the language asked for). */
export interface ClientOffer {
  id: string;
  name: string;
  kind: string;
  description: string;
  startsAt: string | null;
  endsAt: string | null;
  isLiveNow: boolean;
}

/**
 * The Mini App's client API session: signs in with Telegram's initData and keeps the user token in
 * memory only (a reload signs in again with the same initData; nothing outlives the Telegram webview).
 */
export class MiniAppClient {
  private token: string | null = null;
  private signingIn: Promise<void> | null = null;

  constructor(
    private readonly initData: string,
    private readonly merchantId: string,
  ) {}

  /** Exchanges initData for a user token (single-flight). */
  signIn(): Promise<void> {
    this.signingIn ??= (async () => {
      const response = await send('/api/v1/client/auth/telegram', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ initData: this.initData, merchantId: this.merchantId }),
      });
      if (!response.ok) throw await errorFrom(response);
      const body = (await response.json()) as { token: string };
      this.token = body.token;
    })().finally(() => {
      this.signingIn = null;
    });
    return this.signingIn;
  }

  private async call<T>(method: string, path: string, body?: object, isRetry = false): Promise<T> {
    if (!this.token) await this.signIn();
    const hasBody = method === 'POST' || method === 'PATCH';
    const response = await send(`/api/v1/client${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token ?? ''}`,
        ...(hasBody ? { 'content-type': 'application/json' } : {}),
      },
      body: hasBody ? JSON.stringify(body ?? {}) : undefined,
    });
    // The token expired or was revoked: sign in again once with the same initData.
    if (response.status === 401 && !isRetry) {
      this.token = null;
      return this.call<T>(method, path, body, true);
    }
    if (!response.ok) throw await errorFrom(response);
    return (await response.json()) as T;
  }

  me(): Promise<ClientMe> {
    return this.call<ClientMe>('GET', '/me');
  }

  /** Gives the date of birth (YYYY-MM-DD), once; answers the profile. */
  setBirthDate(birthDate: string): Promise<ClientMe> {
    return this.call<ClientMe>('PATCH', '/me', { birthDate });
  }

  code(): Promise<ClientCode> {
    return this.call<ClientCode>('POST', '/code');
  }

  offers(lang: 'ru' | 'en'): Promise<{ offers: ClientOffer[]; timeZone: string }> {
    return this.call<{ offers: ClientOffer[]; timeZone: string }>('GET', `/offers?lang=${lang}`);
  }

  history(): Promise<{ items: ClientEntry[] }> {
    return this.call<{ items: ClientEntry[] }>('GET', '/transactions?limit=30');
  }
}

/** Why the Mini App cannot show the customer's data. */
export type AuthProblem = 'no_telegram' | 'no_merchant' | 'invalid' | 'not_registered' | 'no_bot' | 'network';

/** Classifies a sign-in failure for the error screen. */
export function authProblemOf(error: unknown): AuthProblem {
  if (error instanceof ApiError) {
    if (error.code === 'customer_not_registered' || error.code === 'customer_not_found')
      return 'not_registered';
    if (error.code === 'bot_not_connected' || error.code === 'merchant_not_found') return 'no_bot';
    if (error.status === 0) return 'network';
    if (error.status === 400 && error.message.includes('merchantId')) return 'no_merchant';
  }
  return 'invalid';
}
