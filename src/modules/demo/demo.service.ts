import { randomBytes } from 'node:crypto';
import type { Database } from '../../db/database.js';
import { createPortalUser } from '../auth/auth.service.js';
import { createCustomer, issueCustomerToken } from '../customers/customers.service.js';
import { adjustPoints } from '../ledger/ledger.service.js';
import {
  createApiKey,
  createDevice,
  createManager,
  createMerchant,
  createOutlet,
} from '../merchants/merchants.service.js';
import { DEFAULT_RULES } from '../programme/programme.schema.js';

/** Everything a newcomer or a smoke check needs to call the integration API of the demo merchant. */
export interface DemoCredentials {
  MERCHANT_ID: string;
  INTEGRATION_API_KEY: string;
  SMOKE_USER_TOKEN: string;
  SMOKE_OUTLET_ID: string;
  SMOKE_DEVICE_ID: string;
  SMOKE_MANAGER_ID: string;
  SMOKE_CUSTOMER_ID: string;
  SMOKE_PHONE: string;
  PORTAL_EMAIL: string;
  PORTAL_PASSWORD: string;
}

const DEMO_PHONE = '+79990000001';
const WELCOME_POINTS = 500;

/**
 * Creates a new demo merchant (5% earn, up to 50% of a receipt payable by points, 1 point = 100
 * minor units, no pending period, points live 365 days, no tiers) with an outlet, a device, a
 * cashier, an API key, a customer holding a welcome bonus and a portal owner account.
 */
export async function seedDemo(db: Database, options: { name?: string } = {}): Promise<DemoCredentials> {
  const merchant = await createMerchant(db, { name: options.name ?? 'Demo Coffee', rules: DEFAULT_RULES });
  const outlet = await createOutlet(db, {
    merchantId: merchant.id,
    name: 'Main street',
    address: '1 Main street',
  });
  const device = await createDevice(db, { merchantId: merchant.id, name: 'Till 1', outletId: outlet.id });
  const manager = await createManager(db, { merchantId: merchant.id, name: 'Anna', outletId: outlet.id });
  const apiKey = await createApiKey(db, { merchantId: merchant.id, name: 'Demo POS' });
  const customer = await createCustomer(db, {
    merchantId: merchant.id,
    phone: DEMO_PHONE,
    name: 'Demo Customer',
    source: 'demo',
  });
  await adjustPoints(db, {
    merchantId: merchant.id,
    customerId: customer.id,
    points: WELCOME_POINTS,
    reason: 'Welcome bonus',
    rules: merchant.rules,
  });
  const token = await issueCustomerToken(db, { merchantId: merchant.id, customerId: customer.id });
  const suffix = randomBytes(4).toString('hex');
  const portalEmail = `owner-${suffix}@demo.loyalty.local`;
  const portalPassword = randomBytes(9).toString('base64url');
  await createPortalUser(db, {
    merchantId: merchant.id,
    email: portalEmail,
    password: portalPassword,
    role: 'owner',
    name: 'Demo Owner',
  });
  return {
    MERCHANT_ID: merchant.id,
    INTEGRATION_API_KEY: apiKey.key,
    SMOKE_USER_TOKEN: token,
    SMOKE_OUTLET_ID: outlet.id,
    SMOKE_DEVICE_ID: device.id,
    SMOKE_MANAGER_ID: manager.id,
    SMOKE_CUSTOMER_ID: customer.id,
    SMOKE_PHONE: DEMO_PHONE,
    PORTAL_EMAIL: portalEmail,
    PORTAL_PASSWORD: portalPassword,
  };
}

/** Creates the demo platform operator when no operator exists yet; returns its credentials then. */
export async function seedDemoOperator(db: Database): Promise<{ email: string; password: string } | null> {
  const existing = await db
    .selectFrom('portal_users')
    .select('id')
    .where('role', '=', 'operator')
    .executeTakeFirst();
  if (existing) return null;
  const email = 'admin@loyalty.local';
  const password = randomBytes(9).toString('base64url');
  await createPortalUser(db, { merchantId: null, email, password, role: 'operator', name: 'Demo operator' });
  return { email, password };
}
