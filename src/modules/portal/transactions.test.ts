import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';
import { csvField, exportTransactionsCsv } from './transactions.service.js';

// The transaction list (filters, keyset paging) and its CSV export as a merchant opens it in Excel.

let t: TestApp;
let team: MerchantTeam;
let customerId: string;
let otherCustomerId: string;
const purchaseIds: string[] = [];

beforeAll(async () => {
  t = await createTestApp();
  team = await createMerchantTeam(t.app, t.db);
  const { merchant } = team;
  customerId = (await createTestCustomer(t.db, { merchant, phone: '+79990001122' })).customerId;
  otherCustomerId = (await createTestCustomer(t.db, { merchant })).customerId;
  await t.db
    .updateTable('outlets')
    .set({ name: 'Кафе "Уют", центр' })
    .where('id', '=', merchant.outletId)
    .execute();
  for (const [i, orderId] of ['A-1', 'A-2', 'B,"3"', '=HYPERLINK("x")', 'A-5'].entries()) {
    const purchase = await commitPurchaseViaApi(t.app, merchant, {
      customerId: i === 4 ? otherCustomerId : customerId,
      total: 10_000 * (i + 1),
      orderId,
    });
    purchaseIds.push(purchase.id);
  }
  // Every purchase at the same instant: paging must still neither skip nor repeat one.
  await t.db
    .updateTable('purchases')
    .set({ created_at: new Date('2025-03-01T10:00:00.123456Z') })
    .execute();
  const refund = await t.app.inject({
    method: 'POST',
    url: `/api/v1/integration/purchases/${purchaseIds[0]}/refunds`,
    headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': randomUUID() },
    payload: { outletId: merchant.outletId },
  });
  expect(refund.statusCode).toBe(201);
});
afterAll(async () => {
  await t.close();
});

function get(url: string, role: keyof Omit<MerchantTeam, 'merchant'> = 'manager') {
  return portalRequest(t.app, team[role], { method: 'GET', url });
}

describe('GET /transactions', () => {
  it('pages through every purchase with the cursor, newest first, none skipped or repeated', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(`/transactions?limit=2${cursor ? `&cursor=${cursor}` : ''}`, 'cashier');
      expect(res.statusCode).toBe(200);
      const body = res.json();
      seen.push(...body.items.map((i: { id: string }) => i.id));
      cursor = body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(5);
    expect(new Set(seen)).toEqual(new Set(purchaseIds));
  });

  it('returns each purchase with customer phone, outlet and refund state', async () => {
    const res = await get('/transactions?q=a-1');
    expect(res.json().items).toEqual([
      {
        id: purchaseIds[0],
        orderId: 'A-1',
        customerId,
        customerPhone: '+79990001122',
        outletId: team.merchant.outletId,
        outletName: 'Кафе "Уют", центр',
        total: 10_000,
        discount: 0,
        earnedPoints: 5,
        redeemedPoints: 0,
        refundedAmount: 10_000,
        status: 'refunded',
        createdAt: '2025-03-01T10:00:00.123Z',
      },
    ]);
  });

  it('filters by customer, status, outlet and days', async () => {
    const byCustomer = await get(`/transactions?customerId=${otherCustomerId}`);
    expect(byCustomer.json().items.map((i: { orderId: string }) => i.orderId)).toEqual(['A-5']);
    const committed = await get('/transactions?status=committed');
    expect(committed.json().items).toHaveLength(4);
    const otherOutlet = await get('/transactions?outletId=00000000-0000-4000-8000-000000000000');
    expect(otherOutlet.json().items).toEqual([]);
    const inRange = await get('/transactions?from=2025-03-01&to=2025-03-01');
    expect(inRange.json().items).toHaveLength(5);
    const before = await get('/transactions?to=2025-02-28');
    expect(before.json().items).toHaveLength(0);
    // 10:00 UTC on 1 March is 23:00 on 28 February in Pago Pago (UTC-11).
    const pagoPago = await get('/transactions?from=2025-03-01&to=2025-03-01&tz=Pacific/Pago_Pago');
    expect(pagoPago.json().items).toHaveLength(0);
    const lastFebruary = await get('/transactions?from=2025-02-28&to=2025-02-28&tz=Pacific/Pago_Pago');
    expect(lastFebruary.json().items).toHaveLength(5);
    const badCursor = await get('/transactions?cursor=bm9wZQ');
    expect(badCursor.statusCode).toBe(400);
    expect(badCursor.json().error.message).toMatch(/^cursor/);
  });

  it("counts days in the merchant's time zone when no tz is given", async () => {
    const setZone = (zone: string) =>
      t.db
        .updateTable('merchants')
        .set({ time_zone: zone })
        .where('id', '=', team.merchant.merchantId)
        .execute();
    await setZone('Pacific/Pago_Pago');
    try {
      // 10:00 UTC on 1 March is 28 February on the merchant's clocks; an explicit tz still wins.
      expect((await get('/transactions?from=2025-02-28&to=2025-02-28')).json().items).toHaveLength(5);
      expect((await get('/transactions?from=2025-03-01&to=2025-03-01')).json().items).toHaveLength(0);
      expect((await get('/transactions?from=2025-03-01&to=2025-03-01&tz=UTC')).json().items).toHaveLength(5);
      const csv = await get('/transactions.csv?from=2025-02-28&to=2025-02-28', 'owner');
      expect(csv.body.trim().split('\r\n')).toHaveLength(6);
    } finally {
      await setZone('Europe/Moscow');
    }
  });
});

describe('GET /transactions.csv', () => {
  it('exports a BOM, a header row and RFC 4180 quoting, Cyrillic intact', async () => {
    const res = await get('/transactions.csv?status=committed');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(
      /^attachment; filename="transactions-\d{4}-\d{2}-\d{2}\.csv"$/,
    );
    const raw = res.rawPayload;
    expect([...raw.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const text = raw.subarray(3).toString('utf8');
    const lines = text.split('\r\n');
    expect(lines.at(-1)).toBe('');
    expect(lines[0]).toBe(
      'id,orderId,createdAt,customerId,customerPhone,outletId,outletName,total,discount,earnedPoints,' +
        'redeemedPoints,refundedAmount,status',
    );
    expect(lines).toHaveLength(1 + 4 + 1);
    const quoted = lines.find((l) => l.includes('B,'));
    expect(quoted).toContain(`,"B,""3""",`);
    expect(quoted).toContain(',"Кафе ""Уют"", центр",');
    expect(quoted).toContain(',+79990001122,');
    expect(quoted).toContain(',30000,0,15,0,0,committed');
    // A formula typed as an order id is neutralised for spreadsheets.
    expect(text).toContain(`,"'=HYPERLINK(""x"")",`);
  });

  it('streams page by page: small pages give the same file as one big page', async () => {
    const res = await get('/transactions.csv');
    let paged = '';
    for await (const chunk of exportTransactionsCsv(
      t.db,
      { merchantId: team.merchant.merchantId },
      { pageSize: 2 },
    )) {
      paged += chunk;
    }
    expect(paged).toBe(res.rawPayload.toString('utf8'));
    expect(paged.split('\r\n').filter((l) => l !== '')).toHaveLength(1 + 5);
  });

  it("exports a month's purchases as a stream that can be stopped after its first page", async () => {
    const merchantId = team.merchant.merchantId;
    const lines = async (from: string, to: string) => {
      let text = '';
      for await (const chunk of exportTransactionsCsv(t.db, {
        merchantId,
        from,
        to,
        timeZone: 'Europe/Moscow',
      })) {
        text += chunk;
      }
      return text.split('\r\n').filter((l) => l !== '');
    };
    expect(await lines('2025-03-01', '2025-03-31')).toHaveLength(1 + 5);
    expect(await lines('2025-04-01', '2025-04-30')).toHaveLength(1);
    const stream = exportTransactionsCsv(t.db, { merchantId }, { pageSize: 2 });
    for await (const chunk of stream) {
      expect(String(chunk)).toMatch(/^\uFEFFid,orderId,/);
      break;
    }
    expect(stream.destroyed).toBe(true);
  });

  it('is refused to cashiers (transactions:export)', async () => {
    const res = await get('/transactions.csv', 'cashier');
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe('forbidden');
  });
});

describe('csvField', () => {
  it('quotes what needs it and leaves the rest alone', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\rhere')).toBe('"cr\rhere"');
    expect(csvField(null)).toBe('');
    expect(csvField(12_345)).toBe('12345');
    expect(csvField(new Date('2025-01-02T03:04:05.006Z'))).toBe('2025-01-02T03:04:05.006Z');
    expect(csvField('+7999', { isFreeText: true })).toBe("'+7999");
    expect(csvField('@SUM(A1)', { isFreeText: true })).toBe("'@SUM(A1)");
    expect(csvField('+79991234567')).toBe('+79991234567');
  });
});
