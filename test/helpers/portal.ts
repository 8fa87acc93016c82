import { randomUUID } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Database } from '../../src/db/database.js';
import { createPortalUser } from '../../src/modules/auth/auth.service.js';
import type { StaffRole } from '../../src/modules/auth/permissions.js';
import { createTestMerchant, type TestMerchant } from './factories.js';

/** A signed-in staff member: the account and the token pair of their portal login. */
export interface StaffSession {
  userId: string;
  email: string;
  password: string;
  role: StaffRole;
  merchantId: string;
  accessToken: string;
  refreshToken: string;
}

/** Signs in through POST /api/v1/portal/auth/login; expects 200. */
export async function loginStaff(
  app: FastifyInstance,
  options: { email: string; password: string; remoteAddress?: string },
): Promise<{ accessToken: string; refreshToken: string; user: { id: string } }> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/portal/auth/login',
    payload: { email: options.email, password: options.password },
    ...(options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}),
  });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  return res.json();
}

/** Creates a staff account of the merchant and signs it in. */
export async function createStaffSession(
  app: FastifyInstance,
  db: Database,
  options: { merchantId: string; role: StaffRole; email?: string; password?: string },
): Promise<StaffSession> {
  const email = options.email ?? `${options.role}-${randomUUID().slice(0, 8)}@example.com`;
  const password = options.password ?? 'correct horse battery staple';
  const user = await createPortalUser(db, {
    merchantId: options.merchantId,
    email,
    password,
    role: options.role,
  });
  const tokens = await loginStaff(app, { email, password });
  return {
    userId: user.id,
    email,
    password,
    role: options.role,
    merchantId: options.merchantId,
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
  };
}

/** A merchant (with API key and POS context) and one signed-in account of every staff role. */
export interface MerchantTeam {
  merchant: TestMerchant;
  owner: StaffSession;
  admin: StaffSession;
  manager: StaffSession;
  cashier: StaffSession;
}

/** Creates a merchant with an owner, an admin, a manager and a cashier, all signed in. */
export async function createMerchantTeam(
  app: FastifyInstance,
  db: Database,
  options: { name?: string } = {},
): Promise<MerchantTeam> {
  const merchant = await createTestMerchant(db, { name: options.name });
  const session = (role: StaffRole) => createStaffSession(app, db, { merchantId: merchant.merchantId, role });
  const [owner, admin, manager, cashier] = await Promise.all([
    session('owner'),
    session('admin'),
    session('manager'),
    session('cashier'),
  ]);
  return { merchant, owner, admin, manager, cashier };
}

/** A portal API call as a signed-in staff member (`url` is relative to /api/v1/portal). */
export function portalRequest(
  app: FastifyInstance,
  session: Pick<StaffSession, 'accessToken'> | null,
  options: { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; url: string; payload?: unknown },
): Promise<LightMyRequestResponse> {
  return app.inject({
    method: options.method,
    url: `/api/v1/portal${options.url}`,
    headers: session ? { authorization: `Bearer ${session.accessToken}` } : {},
    ...(options.payload === undefined ? {} : { payload: options.payload as object }),
  });
}
