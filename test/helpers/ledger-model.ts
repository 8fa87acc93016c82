import { isExcludedItem, quotePurchase, RuleViolation } from '../../src/modules/programme/programme.rules.js';
import type { ProgrammeRules, Receipt } from '../../src/modules/programme/programme.schema.js';

// A reference model of the points ledger in plain TypeScript, written from the rules in
// docs/decisions/002-ledger-provenance.md, for the model-based test: the same operations applied
// here and to the real database must leave the same balances, lots and purchases.
//
// Time is virtual, in whole hours from the start; the test moves the database's clock by shifting
// the lots' timestamps by the same hours. Customers, lots and purchases are numbered in the order
// they were created, which is the order of their ids in the database.

type LotState = 'pending' | 'active' | 'expired';
type MoveKind =
  | 'earn'
  | 'redeem'
  | 'refund_return'
  | 'refund_revoke'
  | 'expire'
  | 'adjust'
  | 'hold'
  | 'release';

/** A lot of points, as point_lots holds it (times in virtual hours). */
export interface ModelLot {
  customer: number;
  source: 'earn' | 'adjust';
  purchase: number | null;
  points: number;
  remaining: number;
  state: LotState;
  availableAt: number;
  expiresAt: number | null;
}

interface Move {
  lot: number;
  kind: MoveKind;
  purchase: number | null;
  points: number;
}

/** A purchase and what its refunds did, as purchases holds it. */
export interface ModelPurchase {
  customer: number;
  receipt: Receipt;
  lineEligible: boolean[] | null;
  total: number;
  eligible: number;
  earned: number;
  redeemed: number;
  refunded: number;
  refundedEligible: number;
  refundedLines: number[] | null;
  returned: number;
  revoked: number;
  unrecovered: number;
}

/** A hold: points taken from lots (its reservation, per lot) into held until it is released. */
export interface ModelHold {
  customer: number;
  points: number;
  expiresAt: number;
  status: 'active' | 'committed' | 'cancelled' | 'expired';
  lots: { lot: number; points: number }[];
}

/** What a refund asks for: an amount, receipt lines, or (neither) all that is left. */
export type RefundRequest = { amount?: number; items?: { index: number; amount: number }[] };

/** The outcome of an operation: an error code, or the figures the API answers with. */
export type Outcome<T> = { error: string } | { ok: T };

const HOURS_PER_DAY = 24;

function proRata(points: number, refunded: number, total: number): number {
  return refunded >= total ? points : Math.floor((points * refunded) / total);
}

/** The ledger of one merchant's customers. */
export class LedgerModel {
  now = 0;
  readonly lots: ModelLot[] = [];
  readonly purchases: ModelPurchase[] = [];
  readonly balances: { available: number; pending: number; held: number }[] = [];
  readonly holds: ModelHold[] = [];
  private readonly moves: Move[] = [];

  constructor(readonly rules: ProgrammeRules) {}

  /** Adds a customer with an empty balance; returns its number. */
  addCustomer(): number {
    this.balances.push({ available: 0, pending: 0, held: 0 });
    return this.balances.length - 1;
  }

  /**
   * The balance the API shows: points past their expiry are gone, and holds past theirs released
   * (their points back in the lots that are still alive), before the jobs write it.
   */
  shownBalance(customer: number): { available: number; pending: number; held: number } {
    const stored = this.balanceOf(customer);
    const due = this.lots
      .filter((l) => l.customer === customer && this.isDue(l))
      .reduce((sum, l) => sum + l.remaining, 0);
    let back = 0;
    let released = 0;
    for (const h of this.holds) {
      if (h.customer !== customer || !this.isHoldDue(h)) continue;
      released += h.points;
      for (const { lot, points } of h.lots) {
        const l = this.lotOf(lot);
        if (l.state === 'active' && (l.expiresAt === null || l.expiresAt > this.now)) back += points;
      }
    }
    return {
      available: stored.available - due + back,
      pending: stored.pending,
      held: stored.held - released,
    };
  }

  /** The holds:release job: for each customer with a hold past its expiry, due lots expire first. */
  runHoldRelease(): void {
    for (let c = 0; c < this.balances.length; c++) {
      if (!this.holds.some((h) => h.customer === c && this.isHoldDue(h))) continue;
      this.expireCustomer(c);
      this.releaseDueHolds(c);
    }
  }

  /** A hold of `points` on a receipt of `total`, living `ttlHours`; returns its number. */
  hold(customer: number, total: number, points: number, ttlHours: number): Outcome<{ hold: number }> {
    try {
      quotePurchase({
        rules: this.rules,
        receipt: { total },
        redeemPoints: points,
        availablePoints: this.shownBalance(customer).available,
        tierSpend: 0,
      });
    } catch (error) {
      if (error instanceof RuleViolation) return { error: error.code };
      throw error;
    }
    const restore = this.snapshot();
    this.expireCustomer(customer);
    this.releaseDueHolds(customer);
    // The balance shown may count released points that settle a refund's debt on landing: the
    // ledger checks again after the release, and a refusal leaves nothing behind.
    if (this.balanceOf(customer).available < points) {
      restore();
      return { error: 'insufficient_points' };
    }
    const lots = this.takePoints(customer, points, 'hold', null);
    this.balanceOf(customer).held += points;
    this.holds.push({ customer, points, expiresAt: this.now + ttlHours, status: 'active', lots });
    return { ok: { hold: this.holds.length - 1 } };
  }

  /** Cancels a hold: a committed one is refused, a cancelled or expired one stays as it is. */
  cancelHold(hold: number): Outcome<{ status: string }> {
    const h = this.holdOf(hold);
    // A refused operation changes nothing, not even the expiry it would have written first.
    if (h.status === 'committed') return { error: 'hold_not_active' };
    this.expireCustomer(h.customer);
    this.releaseDueHolds(h.customer);
    if (h.status === 'active') this.releaseHold(h, 'cancelled');
    return { ok: { status: h.status } };
  }

  /** Why a purchase cannot redeem the hold now, or null. */
  holdRefusal(hold: number): string | null {
    const h = this.holdOf(hold);
    if (h.status === 'expired' || this.isHoldDue(h)) return 'hold_expired';
    return h.status === 'active' ? null : 'hold_not_active';
  }

  /** Moves the clock forward. */
  advance(hours: number): void {
    this.now += hours;
  }

  /** The expiry job. */
  runExpiry(): number {
    let points = 0;
    for (let c = 0; c < this.balances.length; c++) points += this.expireCustomer(c);
    return points;
  }

  /** The activation job. */
  runActivation(): number {
    let points = 0;
    for (const lot of this.lots) {
      if (lot.state !== 'pending' || lot.availableAt > this.now) continue;
      lot.state = 'active';
      const balance = this.balanceOf(lot.customer);
      balance.pending -= lot.remaining;
      balance.available += lot.remaining;
      points += lot.remaining;
    }
    return points;
  }

  /** A manual adjustment. */
  adjust(customer: number, points: number): Outcome<{ available: number; pending: number }> {
    // A refused operation changes nothing, not even the expiry it would have written first.
    if (points < 0 && this.shownBalance(customer).available < -points)
      return { error: 'insufficient_points' };
    const restore = this.snapshot();
    this.expireCustomer(customer);
    this.releaseDueHolds(customer);
    const balance = this.balanceOf(customer);
    if (points < 0 && balance.available < -points) {
      restore();
      return { error: 'insufficient_points' };
    }
    if (points > 0) {
      const lot = this.addLot(points, {
        customer,
        source: 'adjust',
        purchase: null,
        state: 'active',
        availableAt: this.now,
        expiresAt: this.expiryFrom(this.now),
      });
      this.move(lot, points, 'adjust', null);
      balance.available += points;
    } else if (points < 0) {
      this.takePoints(customer, -points, 'adjust', null);
    }
    return { ok: { ...balance } };
  }

  /** Commits a purchase; returns its number and figures. */
  commit(
    customer: number,
    receipt: Receipt,
    redeemPoints: number,
    holdNumber: number | null = null,
  ): Outcome<{ purchase: number; earned: number; redeemed: number }> {
    let quote: ReturnType<typeof quotePurchase>;
    const held = holdNumber === null ? null : this.holdOf(holdNumber);
    if (holdNumber !== null) {
      const refusal = this.holdRefusal(holdNumber);
      if (refusal) return { error: refusal };
    }
    try {
      quote = quotePurchase({
        rules: this.rules,
        receipt,
        redeemPoints: held ? held.points : redeemPoints,
        availablePoints: this.shownBalance(customer).available + (held?.points ?? 0),
        tierSpend: 0,
      });
    } catch (error) {
      if (error instanceof RuleViolation) return { error: error.code };
      throw error;
    }
    const restore = this.snapshot();
    this.expireCustomer(customer);
    this.releaseDueHolds(customer);
    const balance = this.balanceOf(customer);
    if (quote.redeemPoints > 0 && balance.available + (held?.points ?? 0) < quote.redeemPoints) {
      restore();
      return { error: 'insufficient_points' };
    }
    const purchase = this.purchases.length;
    this.purchases.push({
      customer,
      receipt,
      lineEligible: receipt.items?.map((item) => !isExcludedItem(this.rules, item)) ?? null,
      total: receipt.total,
      eligible: quote.eligibleAmount,
      earned: quote.earnPoints,
      redeemed: quote.redeemPoints,
      refunded: 0,
      refundedEligible: 0,
      refundedLines: null,
      returned: 0,
      revoked: 0,
      unrecovered: 0,
    });
    if (held) {
      // The hold's points go back to their lots and out again as the purchase's redeem.
      for (const { lot, points } of held.lots) {
        this.move(lot, points, 'release', null);
        this.move(lot, -points, 'redeem', purchase);
      }
      balance.held -= held.points;
      held.status = 'committed';
    } else {
      this.takePoints(customer, quote.redeemPoints, 'redeem', purchase);
    }
    if (quote.earnPoints > 0) {
      const isPending = this.rules.pendingDays > 0;
      const availableAt = this.now + this.rules.pendingDays * HOURS_PER_DAY;
      const lot = this.addLot(quote.earnPoints, {
        customer,
        source: 'earn',
        purchase,
        state: isPending ? 'pending' : 'active',
        availableAt,
        expiresAt: this.expiryFrom(availableAt),
      });
      this.move(lot, quote.earnPoints, 'earn', purchase);
      if (isPending) balance.pending += quote.earnPoints;
      else balance.available += quote.earnPoints;
    }
    return { ok: { purchase, earned: quote.earnPoints, redeemed: quote.redeemPoints } };
  }

  /** Refunds part or all that is left of a purchase. */
  refund(
    purchaseNumber: number,
    request: RefundRequest,
  ): Outcome<{ amount: number; returned: number; revoked: number; unrecovered: number }> {
    const p = this.purchaseOf(purchaseNumber);
    const customer = p.customer;
    const rest = p.total - p.refunded;
    if (rest <= 0) return { error: 'purchase_fully_refunded' };
    const lines = p.receipt.items ?? [];
    let amount = 0;
    let eligiblePart = 0;
    let refundedLines: number[] | null;
    let byItems: boolean;
    if (request.items) {
      if (lines.length === 0) return { error: 'refund_items_unavailable' };
      if (p.refunded > 0 && p.refundedLines === null) return { error: 'refund_mode_conflict' };
      refundedLines = [...(p.refundedLines ?? lines.map(() => 0))];
      for (const item of request.items) {
        const line = lines[item.index];
        if (!line) return { error: 'refund_item_not_found' };
        const left = line.amount - (refundedLines[item.index] ?? 0);
        if (item.amount > left) return { error: 'refund_exceeds_remaining' };
        refundedLines[item.index] = (refundedLines[item.index] ?? 0) + item.amount;
        amount += item.amount;
        if (p.lineEligible?.[item.index]) eligiblePart += item.amount;
      }
      byItems = true;
    } else {
      amount = request.amount ?? rest;
      if (amount > rest) return { error: 'refund_exceeds_remaining' };
      byItems = p.refundedLines !== null;
      refundedLines = null;
      if (byItems) {
        if (amount < rest) return { error: 'refund_mode_conflict' };
        refundedLines = lines.map((l) => l.amount);
        eligiblePart = p.eligible - p.refundedEligible;
      }
    }
    // Checked: from here the refund goes through (a refused one changes nothing).
    this.expireCustomer(customer);
    this.releaseDueHolds(customer);
    const after = p.refunded + amount;
    const eligibleAfter = byItems ? p.refundedEligible + eligiblePart : proRata(p.eligible, after, p.total);
    const share = (points: number) =>
      byItems && after < p.total
        ? p.eligible === 0
          ? 0
          : Math.floor((points * eligibleAfter) / p.eligible)
        : proRata(points, after, p.total);
    const returned = share(p.redeemed) - p.returned;
    const revokeTotal = share(p.earned);

    // Return: to the lots the purchase redeemed from, latest taken first.
    let left = returned;
    for (const source of this.outstandingRedeems(purchaseNumber)) {
      if (left === 0) break;
      const part = Math.min(left, source.outstanding);
      this.landPoints(customer, source.lot, part, 'refund_return', purchaseNumber);
      left -= part;
    }
    if (left > 0) throw new Error('model: redeemed points without source lots');

    // Revoke.
    const earnedLot = this.lots.findIndex((l) => l.purchase === purchaseNumber && l.source === 'earn');
    const gone = earnedLot < 0 ? 0 : -this.sumMoves((m) => m.lot === earnedLot && m.kind === 'expire');
    const owed = Math.max(0, revokeTotal - gone);
    left = Math.max(0, owed - p.revoked - p.unrecovered);
    let direct = 0;
    let swap = 0;
    const lot = this.lots[earnedLot];
    if (left > 0 && lot && lot.remaining > 0 && (lot.state === 'pending' || lot.state === 'active')) {
      direct = Math.min(left, lot.remaining);
      this.move(earnedLot, -direct, 'refund_revoke', purchaseNumber);
      if (lot.state === 'pending') this.balanceOf(customer).pending -= direct;
      else this.balanceOf(customer).available -= direct;
      left -= direct;
    }
    if (left > 0) {
      swap = Math.min(left, this.balanceOf(customer).available);
      this.takePoints(customer, swap, 'refund_revoke', purchaseNumber);
      left -= swap;
    }
    p.refunded = after;
    p.refundedEligible = eligibleAfter;
    p.refundedLines = byItems ? refundedLines : null;
    p.returned += returned;
    p.revoked += direct + swap;
    p.unrecovered += left;
    this.settleDebts(customer);
    return { ok: { amount, returned, revoked: direct + swap, unrecovered: left } };
  }

  /**
   * Where points came out of nothing, or null: every refunded earned point must be taken back, owed
   * (unrecovered) or expired, so a customer holds at most what adjustments and the kept parts of
   * purchases stand for.
   */
  findPointsOutOfNothing(): string | null {
    for (let c = 0; c < this.balances.length; c++) {
      const balance = this.balanceOf(c);
      let entitled = this.sumMoves((m) => m.kind === 'adjust' && this.lotOf(m.lot).customer === c);
      for (const [n, p] of this.purchases.entries()) {
        if (p.customer !== c) continue;
        const share =
          p.refunded >= p.total
            ? p.earned
            : p.refundedLines !== null
              ? Math.floor((p.earned * p.refundedEligible) / Math.max(p.eligible, 1))
              : Math.floor((p.earned * p.refunded) / Math.max(p.total, 1));
        const lot = this.lots.findIndex((l) => l.purchase === n && l.source === 'earn');
        const expired = lot < 0 ? 0 : -this.sumMoves((m) => m.lot === lot && m.kind === 'expire');
        if (share > p.revoked + p.unrecovered + expired) return `purchase ${n} kept refunded points`;
        entitled += p.earned - share - (p.redeemed - p.returned) + p.unrecovered;
      }
      if (balance.available + balance.pending + balance.held > entitled)
        return `customer ${c} holds more than entitled`;
    }
    return null;
  }

  /** Where the model's own sums do not hold (active lots vs available, holds vs held), or null. */
  findBrokenSums(): string | null {
    for (let c = 0; c < this.balances.length; c++) {
      const balance = this.balanceOf(c);
      const lots = this.lots
        .filter((l) => l.customer === c && l.state === 'active')
        .reduce((sum, l) => sum + l.remaining, 0);
      if (lots !== balance.available)
        return `customer ${c}: active lots ${lots}, available ${balance.available}`;
      const held = this.holds
        .filter((h) => h.customer === c && h.status === 'active')
        .reduce((sum, h) => sum + h.points, 0);
      if (held !== balance.held) return `customer ${c}: active holds ${held}, held ${balance.held}`;
    }
    return null;
  }

  /** The purchase's status as the API reports it. */
  statusOf(purchase: number): string {
    const p = this.purchaseOf(purchase);
    return p.refunded >= p.total && p.refunded > 0
      ? 'refunded'
      : p.refunded > 0
        ? 'partially_refunded'
        : 'committed';
  }

  private balanceOf(customer: number) {
    const balance = this.balances[customer];
    if (!balance) throw new Error(`model: no customer ${customer}`);
    return balance;
  }

  /** Copies the state; the function returned puts it back (an operation the ledger refuses). */
  private snapshot(): () => void {
    const copy = structuredClone({
      lots: this.lots,
      purchases: this.purchases,
      balances: this.balances,
      holds: this.holds,
      moves: this.moves,
    });
    return () => {
      this.lots.splice(0, this.lots.length, ...copy.lots);
      this.purchases.splice(0, this.purchases.length, ...copy.purchases);
      this.balances.splice(0, this.balances.length, ...copy.balances);
      this.holds.splice(0, this.holds.length, ...copy.holds);
      this.moves.splice(0, this.moves.length, ...copy.moves);
    };
  }

  private holdOf(hold: number): ModelHold {
    const h = this.holds[hold];
    if (!h) throw new Error(`model: no hold ${hold}`);
    return h;
  }

  private isHoldDue(h: ModelHold): boolean {
    return h.status === 'active' && h.expiresAt <= this.now;
  }

  /** Holds past their expiry give their points back (every write does it first). */
  private releaseDueHolds(customer: number): void {
    for (const h of this.holds)
      if (h.customer === customer && this.isHoldDue(h)) this.releaseHold(h, 'expired');
  }

  /** A hold's points land back in their lots, keeping those lots' expiry and settling their debts. */
  private releaseHold(h: ModelHold, status: 'cancelled' | 'expired'): void {
    this.balanceOf(h.customer).held -= h.points;
    for (const { lot, points } of h.lots) this.landPoints(h.customer, lot, points, 'release', null);
    h.status = status;
  }

  private purchaseOf(purchase: number): ModelPurchase {
    const p = this.purchases[purchase];
    if (!p) throw new Error(`model: no purchase ${purchase}`);
    return p;
  }

  private lotOf(lot: number): ModelLot {
    const found = this.lots[lot];
    if (!found) throw new Error(`model: no lot ${lot}`);
    return found;
  }

  private expiryFrom(start: number): number | null {
    const days = this.rules.pointsLifetimeDays;
    return days === null ? null : start + days * HOURS_PER_DAY;
  }

  private isDue(lot: ModelLot): boolean {
    return lot.state === 'active' && lot.remaining > 0 && lot.expiresAt !== null && lot.expiresAt <= this.now;
  }

  private addLot(points: number, lot: Omit<ModelLot, 'points' | 'remaining'>): number {
    this.lots.push({ ...lot, points, remaining: 0 });
    return this.lots.length - 1;
  }

  private move(lot: number, points: number, kind: MoveKind, purchase: number | null): void {
    this.moves.push({ lot, kind, purchase, points });
    this.lotOf(lot).remaining += points;
  }

  private sumMoves(filter: (m: Move) => boolean): number {
    let sum = 0;
    for (const m of this.moves) if (filter(m)) sum += m.points;
    return sum;
  }

  /** Lots a purchase redeemed from and did not get back yet, latest taken first. */
  private outstandingRedeems(purchase: number) {
    const byLot = new Map<number, { outstanding: number; lastRedeem: number }>();
    this.moves.forEach((m, i) => {
      if (m.purchase !== purchase || (m.kind !== 'redeem' && m.kind !== 'refund_return')) return;
      const entry = byLot.get(m.lot) ?? { outstanding: 0, lastRedeem: -1 };
      entry.outstanding -= m.points;
      if (m.kind === 'redeem') entry.lastRedeem = i;
      byLot.set(m.lot, entry);
    });
    return [...byLot.entries()]
      .filter(([, v]) => v.outstanding > 0)
      .sort((a, b) => b[1].lastRedeem - a[1].lastRedeem)
      .map(([lot, v]) => ({ lot, outstanding: v.outstanding }));
  }

  /** Lots a refund of `purchase` took points from in place of its spent points, latest first. */
  private outstandingSwaps(purchase: number, exceptLot: number) {
    const byLot = new Map<number, { outstanding: number; last: number }>();
    this.moves.forEach((m, i) => {
      if (m.purchase !== purchase || m.kind !== 'refund_revoke' || m.lot === exceptLot) return;
      const entry = byLot.get(m.lot) ?? { outstanding: 0, last: -1 };
      entry.outstanding -= m.points;
      entry.last = i;
      byLot.set(m.lot, entry);
    });
    return [...byLot.entries()]
      .filter(([, v]) => v.outstanding > 0)
      .sort((a, b) => b[1].last - a[1].last)
      .map(([lot, v]) => ({ lot, outstanding: v.outstanding }));
  }

  private expireCustomer(customer: number): number {
    let sum = 0;
    this.lots.forEach((lot, i) => {
      if (lot.customer !== customer || !this.isDue(lot)) return;
      sum += lot.remaining;
      this.move(i, -lot.remaining, 'expire', null);
      lot.state = 'expired';
    });
    this.balanceOf(customer).available -= sum;
    return sum;
  }

  private takePoints(
    customer: number,
    points: number,
    kind: MoveKind,
    purchase: number | null,
  ): { lot: number; points: number }[] {
    const taken: { lot: number; points: number }[] = [];
    if (points <= 0) return taken;
    const order = this.lots
      .map((lot, i) => ({ lot, i }))
      .filter(({ lot }) => lot.customer === customer && lot.state === 'active' && lot.remaining > 0)
      .sort(
        (a, b) =>
          (a.lot.expiresAt ?? Number.POSITIVE_INFINITY) - (b.lot.expiresAt ?? Number.POSITIVE_INFINITY) ||
          a.i - b.i,
      );
    let left = points;
    for (const { lot, i } of order) {
      const take = Math.min(lot.remaining, left);
      this.move(i, -take, kind, purchase);
      taken.push({ lot: i, points: take });
      left -= take;
      if (left === 0) break;
    }
    if (left > 0) throw new Error('model: lots hold less than the available balance');
    this.balanceOf(customer).available -= points;
    return taken;
  }

  private landPoints(
    customer: number,
    lotNumber: number,
    points: number,
    kind: MoveKind,
    purchase: number | null,
  ) {
    if (points <= 0) return;
    const lot = this.lotOf(lotNumber);
    const wasExpired = lot.state === 'expired' || (lot.expiresAt !== null && lot.expiresAt <= this.now);
    const balance = this.balanceOf(customer);
    this.move(lotNumber, points, kind, purchase);
    balance.available += points;
    let left = points;
    const owner = lot.source === 'earn' && lot.purchase !== null ? this.purchases[lot.purchase] : undefined;
    if (owner && lot.purchase !== null && owner.refunded > 0) {
      const ownerNumber = lot.purchase;
      const swapped = -this.sumMoves(
        (m) => m.purchase === ownerNumber && m.kind === 'refund_revoke' && m.lot !== lotNumber,
      );
      const settle = Math.min(left, owner.unrecovered);
      let give = Math.min(left - settle, swapped);
      if (settle + give > 0) {
        this.move(lotNumber, -(settle + give), 'refund_revoke', ownerNumber);
        balance.available -= settle + give;
        owner.unrecovered -= settle;
        owner.revoked += settle;
        left -= settle + give;
        for (const swap of this.outstandingSwaps(ownerNumber, lotNumber)) {
          if (give === 0) break;
          const part = Math.min(give, swap.outstanding);
          this.landPoints(customer, swap.lot, part, 'refund_revoke', ownerNumber);
          give -= part;
        }
      }
    }
    if (left > 0 && wasExpired) {
      this.move(lotNumber, -left, 'expire', null);
      lot.state = 'expired';
      balance.available -= left;
    }
  }

  private settleDebts(customer: number): void {
    const owing = this.purchases
      .map((p, i) => ({ p, i, unrecovered: p.unrecovered }))
      .filter(({ p }) => p.customer === customer && p.unrecovered > 0);
    for (const { p, i, unrecovered } of owing) {
      const available = this.balanceOf(customer).available;
      if (available === 0) break;
      const take = Math.min(available, unrecovered);
      this.takePoints(customer, take, 'refund_revoke', i);
      p.unrecovered -= take;
      p.revoked += take;
    }
  }
}
