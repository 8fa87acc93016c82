import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import {
  createTestCampaign,
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { findLedgerViolations } from '../../../test/helpers/ledger.js';
import { grantBirthdayBonuses } from './birthday.service.js';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

async function customerBornOn(merchant: TestMerchant, birthDate: string): Promise<string> {
  const { customerId } = await createTestCustomer(t.db, { merchant });
  await t.db.updateTable('customers').set({ birth_date: birthDate }).where('id', '=', customerId).execute();
  return customerId;
}

async function availableOf(customerId: string): Promise<number> {
  const row = await t.db
    .selectFrom('balances')
    .select('available')
    .where('customer_id', '=', customerId)
    .executeTakeFirstOrThrow();
  return row.available;
}

/** The merchant's local date at the database's now(). */
async function localToday(merchant: TestMerchant): Promise<string> {
  const { rows } = await sql<{ today: string }>`
    select to_char((now() at time zone time_zone)::date, 'YYYY-MM-DD') as today from merchants
    where id = ${merchant.merchantId}`.execute(t.db);
  return rows[0]?.today ?? '';
}

describe('campaigns:birthday', () => {
  it('grants once however often and however many workers run it', async () => {
    const merchant = await createTestMerchant(t.db);
    await t.db
      .updateTable('merchants')
      .set({ time_zone: 'Asia/Kamchatka' })
      .where('id', '=', merchant.merchantId)
      .execute();
    const campaign = await createTestCampaign(t.db, merchant, {
      kind: 'birthday',
      effect: { points: 500, daysBefore: 3 },
    });
    const today = await localToday(merchant);
    const inTwoDays = new Date(Date.parse(`${today}T00:00:00Z`) + 2 * 86_400_000).toISOString().slice(5, 10);
    const soon = await customerBornOn(merchant, `1991-${inTwoDays === '02-29' ? '03-01' : inTwoDays}`);
    const later = new Date(Date.parse(`${today}T00:00:00Z`) + 10 * 86_400_000).toISOString().slice(5, 10);
    const notYet = await customerBornOn(merchant, `1991-${later === '02-29' ? '03-01' : later}`);

    // Two workers at once, then a third run.
    const runs = await Promise.all([grantBirthdayBonuses(t.db), grantBirthdayBonuses(t.db)]);
    expect(runs.reduce((sum, r) => sum + r.points, 0)).toBe(500);
    expect((await grantBirthdayBonuses(t.db)).points).toBe(0);

    expect(await availableOf(soon)).toBe(500);
    expect(await availableOf(notYet)).toBe(0);
    const occasions = await t.db
      .selectFrom('campaign_occasions')
      .select(['customer_id', 'occasion', 'points'])
      .where('campaign_id', '=', campaign.id)
      .execute();
    expect(occasions).toHaveLength(1);
    expect(occasions[0]).toMatchObject({ customer_id: soon, points: 500 });
    expect(occasions[0]?.occasion).toMatch(/^birthday:\d{4}$/);
    const events = await t.db
      .selectFrom('outbox_events')
      .select('payload')
      .where('merchant_id', '=', merchant.merchantId)
      .where('type', '=', 'bonus.granted')
      .execute();
    expect(events.map((e) => e.payload)).toEqual([
      expect.objectContaining({ customerId: soon, kind: 'birthday', points: 500, purchaseId: null }),
    ]);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it("counts days in the merchant's time zone, and celebrates 29 February on the 28th", async () => {
    const merchant = await createTestMerchant(t.db);
    await createTestCampaign(t.db, merchant, { kind: 'birthday', effect: { points: 100, daysBefore: 0 } });
    const leapling = await customerBornOn(merchant, '2000-02-29');
    const march = await customerBornOn(merchant, '1999-03-01');
    // 20:30 UTC on 28 February 2027 is 23:30 in Moscow (the default zone): the 28th, a year without 29 February.
    expect((await grantBirthdayBonuses(t.db, { now: new Date('2027-02-28T20:30:00Z') })).points).toBe(100);
    expect(await availableOf(leapling)).toBe(100);
    expect(await availableOf(march)).toBe(0);
    // 21:30 UTC is already 1 March in Moscow.
    expect((await grantBirthdayBonuses(t.db, { now: new Date('2027-02-28T21:30:00Z') })).points).toBe(100);
    expect(await availableOf(march)).toBe(100);
    // In a leap year the 28th is not the leapling's day, the 29th is, and it is a new year's grant.
    expect((await grantBirthdayBonuses(t.db, { now: new Date('2028-02-28T12:00:00Z') })).points).toBe(0);
    expect((await grantBirthdayBonuses(t.db, { now: new Date('2028-02-29T12:00:00Z') })).points).toBe(100);
    expect(await availableOf(leapling)).toBe(200);
  });

  it('stacks birthday campaigns by priority and skips paused ones', async () => {
    const merchant = await createTestMerchant(t.db);
    await createTestCampaign(t.db, merchant, {
      kind: 'birthday',
      effect: { points: 300, daysBefore: 0 },
      priority: 2,
      exclusive: true,
    });
    await createTestCampaign(t.db, merchant, { kind: 'birthday', effect: { points: 50, daysBefore: 0 } });
    await createTestCampaign(t.db, merchant, {
      kind: 'birthday',
      effect: { points: 9000, daysBefore: 0 },
      status: 'paused',
    });
    const customer = await customerBornOn(merchant, '1980-06-15');
    await grantBirthdayBonuses(t.db, { now: new Date('2030-06-15T09:00:00Z') });
    expect(await availableOf(customer)).toBe(300);
  });
});

describe('campaigns:birthday, a customer gone between the listing and the grant', () => {
  it('skips that customer and grants the others', async () => {
    const merchant = await createTestMerchant(t.db);
    await createTestCampaign(t.db, merchant, { kind: 'birthday', effect: { points: 300, daysBefore: 0 } });
    const today = await localToday(merchant);
    // Leap years: today's month and day is a valid birth date in both, 29 February included.
    const gone = await customerBornOn(merchant, `1988-${today.slice(5)}`);
    const kept = await customerBornOn(merchant, `1992-${today.slice(5)}`);
    // What a deletion leaves in the moment between them: the customer listed, its balance row gone.
    await t.db.deleteFrom('balances').where('customer_id', '=', gone).execute();
    try {
      const run = await grantBirthdayBonuses(t.db);
      expect(run.points).toBeGreaterThanOrEqual(300);
      expect(await availableOf(kept)).toBe(300);
    } finally {
      await t.db.deleteFrom('customers').where('id', '=', gone).execute();
    }
  });
});
