import type { FastifyRequest } from 'fastify';
import type { Executor } from '../db/database.js';
import { findCustomerByToken } from '../modules/customers/customers.service.js';
import { findApiKey } from '../modules/merchants/merchants.service.js';
import type { ProgrammeRules } from '../modules/programme/programme.schema.js';
import { AppError } from './errors.js';

/** The merchant an integration request acts for. */
export interface MerchantAuth {
  keyId: string;
  merchantId: string;
  rules: ProgrammeRules;
  /** The merchant's IANA time zone (campaign schedules). */
  timeZone: string;
}

/** The customer a client request acts for. */
export interface CustomerAuth {
  customerId: string;
  merchantId: string;
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const [scheme, token] = header.split(' ');
  return scheme?.toLowerCase() === 'bearer' && token ? token.trim() : undefined;
}

/**
 * Looks API keys up with a short in-process cache. Revocations and rule changes are announced
 * with NOTIFY (merchants.service) and drop the cache at once; the TTL bounds staleness if a
 * notification is ever missed.
 */
export class ApiKeyAuthenticator {
  private readonly cache = new Map<string, { value: MerchantAuth | null; expiresAt: number }>();

  constructor(
    private readonly db: Executor,
    private readonly ttlSeconds: number,
  ) {}

  /** Drops every cached key (called on NOTIFY and after the listener reconnects). */
  clear(): void {
    this.cache.clear();
  }

  /** The merchant of the request's API key (X-Api-Key or Authorization: Bearer); 401 otherwise. */
  async authenticate(request: FastifyRequest): Promise<MerchantAuth> {
    const header = request.headers['x-api-key'];
    const key = (Array.isArray(header) ? header[0] : header)?.trim() || bearer(request);
    if (!key) throw new AppError('unauthorized', 'Missing API key: send it in the X-Api-Key header');
    const auth = await this.lookup(key);
    if (!auth) throw new AppError('unauthorized', 'Invalid or revoked API key');
    return auth;
  }

  private async lookup(key: string): Promise<MerchantAuth | null> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) return hit.value;
    const found = await findApiKey(this.db, key);
    if (found && found.merchantStatus !== 'active') {
      throw new AppError('merchant_suspended', 'The merchant of this API key is suspended');
    }
    const value = found
      ? { keyId: found.keyId, merchantId: found.merchantId, rules: found.rules, timeZone: found.timeZone }
      : null;
    if (this.ttlSeconds > 0) {
      if (this.cache.size > 10_000) this.cache.clear();
      // Unknown keys are cached briefly too, so a flood of bad keys does not reach the database.
      this.cache.set(key, { value, expiresAt: now + (value ? this.ttlSeconds : 5) * 1000 });
    }
    return value;
  }
}

/** The customer of the request's bearer token; 401 otherwise, 403 while the merchant is suspended. */
export async function authenticateCustomer(db: Executor, request: FastifyRequest): Promise<CustomerAuth> {
  const token = bearer(request);
  if (!token) throw new AppError('unauthorized', 'Missing user token: send Authorization: Bearer <token>');
  const found = await findCustomerByToken(db, token);
  if (!found) throw new AppError('unauthorized', 'Invalid or expired user token');
  if (found.merchantStatus !== 'active') {
    throw new AppError('merchant_suspended', 'The loyalty programme of this merchant is suspended');
  }
  return { customerId: found.customerId, merchantId: found.merchantId };
}

declare module 'fastify' {
  interface FastifyRequest {
    merchantAuth: MerchantAuth | null;
    customerAuth: CustomerAuth | null;
  }
}

/** The merchant of an authenticated integration request (the preHandler guarantees it). */
export function merchantOf(request: FastifyRequest): MerchantAuth {
  if (!request.merchantAuth) throw new AppError('unauthorized', 'Missing API key');
  return request.merchantAuth;
}

/** The customer of an authenticated client request (the preHandler guarantees it). */
export function customerOf(request: FastifyRequest): CustomerAuth {
  if (!request.customerAuth) throw new AppError('unauthorized', 'Missing user token');
  return request.customerAuth;
}
