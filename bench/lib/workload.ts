import type {
  CommitPurchaseBody,
  ResolveCustomerBody,
} from '../../src/modules/integration/integration.schema.js';
import { redeemCapPoints } from '../../src/modules/programme/programme.rules.js';
import type { BenchMerchant } from './seed.js';
import { WRK_SEQ } from './wrk.js';

// What the POS clients send: purchases on random customers (many customers, so row locks rarely
// collide), half of them also paying with a few points, and resolves by id or by code.

const MIN_TOTAL = 5_000; // 50.00
const MAX_TOTAL = 300_000; // 3 000.00
const MAX_REDEEM = 50;

function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** Builds request bodies for one merchant; ids and keys are unique per run, phase and sequence. */
export class Workload {
  constructor(
    private readonly merchant: BenchMerchant,
    private readonly runId: string,
    private readonly redeemShare = 0.5,
  ) {}

  randomCustomer(): string {
    const ids = this.merchant.customerIds;
    const id = ids[Math.floor(Math.random() * ids.length)];
    if (id === undefined) throw new Error('no customers seeded');
    return id;
  }

  /** A commit body and its Idempotency-Key: earn only, or earn + redeem a few points. */
  commit(phase: string, seq: number): { body: CommitPurchaseBody; key: string } {
    const total = randomInt(MIN_TOTAL, MAX_TOTAL);
    const cap = redeemCapPoints(this.merchant.rules, { total });
    const redeem = Math.random() < this.redeemShare && cap > 0 ? randomInt(1, Math.min(MAX_REDEEM, cap)) : 0;
    const orderId = `${this.runId}-${phase}-${seq}`;
    const body: CommitPurchaseBody = {
      customer: { customerId: this.randomCustomer() },
      receipt: { total },
      outletId: this.merchant.outletId,
      orderId,
    };
    if (redeem > 0) body.redeemPoints = redeem;
    return { body, key: orderId };
  }

  /**
   * An earn-only commit body on one of the first `customers` customers, as JSON for wrk: its order id
   * ends in WRK_SEQ, which wrk numbers per request (the Idempotency-Key header does the same).
   */
  wrkEarnOnly(phase: string, customers: number): string {
    const ids = this.merchant.customerIds.slice(0, customers);
    const id = ids[randomInt(0, ids.length - 1)];
    if (id === undefined) throw new Error('no customers seeded');
    const body: CommitPurchaseBody = {
      customer: { customerId: id },
      receipt: { total: randomInt(MIN_TOTAL, MAX_TOTAL) },
      outletId: this.merchant.outletId,
      orderId: `${this.runId}-${phase}-${WRK_SEQ}`,
    };
    return JSON.stringify(body);
  }

  /** A resolve body: by customer id or, every other time, by the customer's live code. */
  resolve(seq: number, codes: Map<string, string>): ResolveCustomerBody {
    const customerId = this.randomCustomer();
    const code = seq % 2 === 1 ? codes.get(customerId) : undefined;
    return code === undefined
      ? { customerId, outletId: this.merchant.outletId }
      : { code, outletId: this.merchant.outletId };
  }
}
