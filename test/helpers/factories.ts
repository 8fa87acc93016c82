import type { Database } from '../../src/db/database.js';
import { CreateCampaignBody } from '../../src/modules/campaigns/campaigns.schema.js';
import { createCampaign } from '../../src/modules/campaigns/campaigns.service.js';
import { createCustomer, issueCustomerToken } from '../../src/modules/customers/customers.service.js';
import { adjustPoints } from '../../src/modules/ledger/ledger.service.js';
import {
  createApiKey,
  createDevice,
  createManager,
  createMerchant,
  createOutlet,
} from '../../src/modules/merchants/merchants.service.js';
import { DEFAULT_RULES, type ProgrammeRules } from '../../src/modules/programme/programme.schema.js';

/** A merchant with an API key and a full POS context (outlet, device in it, cashier). */
export interface TestMerchant {
  merchantId: string;
  apiKey: string;
  apiKeyId: string;
  outletId: string;
  deviceId: string;
  managerId: string;
  rules: ProgrammeRules;
}

/** Creates a merchant (default programme unless `rules` overrides parts of it) with key and context. */
export async function createTestMerchant(
  db: Database,
  options: { rules?: Partial<ProgrammeRules>; name?: string } = {},
): Promise<TestMerchant> {
  const merchant = await createMerchant(db, {
    name: options.name ?? 'Test merchant',
    rules: { ...DEFAULT_RULES, ...options.rules },
  });
  const outlet = await createOutlet(db, { merchantId: merchant.id, name: 'Outlet' });
  const device = await createDevice(db, { merchantId: merchant.id, name: 'Till', outletId: outlet.id });
  const manager = await createManager(db, { merchantId: merchant.id, name: 'Cashier' });
  const key = await createApiKey(db, { merchantId: merchant.id });
  return {
    merchantId: merchant.id,
    apiKey: key.key,
    apiKeyId: key.id,
    outletId: outlet.id,
    deviceId: device.id,
    managerId: manager.id,
    rules: merchant.rules,
  };
}

let phoneCounter = 0;

/** A unique E.164 phone for tests. */
export function nextPhone(): string {
  phoneCounter += 1;
  return `+7999${String(process.pid % 1000).padStart(3, '0')}${String(phoneCounter).padStart(4, '0')}`;
}

/** Creates a customer of a merchant (the merchant is created when missing), optionally with points. */
export async function createTestCustomer(
  db: Database,
  options: { merchant?: TestMerchant; points?: number; phone?: string; name?: string } = {},
): Promise<{ customerId: string; phone: string; token: string; merchant: TestMerchant }> {
  const merchant = options.merchant ?? (await createTestMerchant(db));
  const customer = await createCustomer(db, {
    merchantId: merchant.merchantId,
    phone: options.phone ?? nextPhone(),
    name: options.name ?? 'Test customer',
  });
  if (options.points) {
    await adjustPoints(db, {
      merchantId: merchant.merchantId,
      customerId: customer.id,
      points: options.points,
      reason: 'test',
      rules: merchant.rules,
    });
  }
  const token = await issueCustomerToken(db, { merchantId: merchant.merchantId, customerId: customer.id });
  return { customerId: customer.id, phone: customer.phone, token, merchant };
}

/** Creates an active campaign of a merchant (CreateCampaignBody's defaults for what is not given). */
export async function createTestCampaign(
  db: Database,
  merchant: TestMerchant,
  input: { name?: string; kind: string; effect: object } & Record<string, unknown>,
) {
  return createCampaign(db, {
    merchantId: merchant.merchantId,
    input: CreateCampaignBody.parse({ name: `${input.kind} campaign`, status: 'active', ...input }),
  });
}
