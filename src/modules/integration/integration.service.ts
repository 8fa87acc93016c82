import type { Database } from '../../db/database.js';
import type { MerchantAuth } from '../../http/auth.js';
import { AppError } from '../../http/errors.js';
import { type FailureLimiter, rateLimitedError } from '../../http/rate-limit.js';
import type { OutboxNotifier } from '../../jobs/outbox.notify.js';
import type { CampaignCache } from '../campaigns/campaigns.service.js';
import {
  type CustomerRef,
  type CustomerState,
  createCustomer,
  findCustomerState,
  findReferrer,
} from '../customers/customers.service.js';
import { findHoldForRedeem } from '../ledger/holds.service.js';
import {
  findConcurrentResult,
  outcomeOf,
  requestHash,
  runIdempotent,
  runInIdempotentTransaction,
  storedResultOf,
} from '../ledger/idempotency.service.js';
import type { PurchaseCommitter } from '../ledger/ledger.batcher.js';
import {
  type CampaignMoment,
  type CommitResult,
  commitPurchase,
  type PosContext,
  quoteForCustomer,
  type RefundResult,
  refundPurchase,
} from '../ledger/ledger.service.js';
import { findForeignContext } from '../merchants/merchants.service.js';
import { selectTier } from '../programme/programme.rules.js';
import type { ProgrammeRules } from '../programme/programme.schema.js';
import { type IntegrationReads, readReplayOrCustomer } from './integration.reads.js';
import type {
  CommitPurchaseBody,
  EnrollCustomerBody,
  EnrollCustomerResponse,
  QuotePurchaseBody,
  RefundPurchaseBody,
  ResolveCustomerBody,
} from './integration.schema.js';

/** What the integration API's operations need. */
export interface IntegrationDeps {
  db: Database;
  /** Failed code resolves per API key, so codes cannot be guessed. */
  codeFailures: FailureLimiter;
  /** Remembers POS contexts already checked (cleared on NOTIFY like the API-key cache). */
  contexts: ContextCache;
  /** The merchants' active purchase campaigns (cleared on NOTIFY like the API-key cache). */
  campaigns: CampaignCache;
  /** Wakes the outbox workers after a commit or refund. */
  notifier?: OutboxNotifier;
  /** Group commit of purchases (GROUP_COMMIT); absent: each commit in its own transaction. */
  commits?: PurchaseCommitter;
  /** Batched customer reads (GROUP_READS); absent: each read its own statement. */
  reads?: IntegrationReads;
}

/**
 * POS contexts (outlet, device, manager ids) already found to belong to a merchant. Every POS
 * request carries one, and they change rarely, so the check is done once per minute per process;
 * a change announced on the cache channel clears it at once.
 */
export class ContextCache {
  private readonly valid = new Map<string, number>();

  constructor(private readonly ttlMs = 60_000) {}

  /** Whether this context was checked recently. */
  has(key: string): boolean {
    const expiresAt = this.valid.get(key);
    return expiresAt !== undefined && expiresAt > Date.now();
  }

  /** Remembers a context that passed the check. */
  add(key: string): void {
    if (this.valid.size > 50_000) this.valid.clear();
    this.valid.set(key, Date.now() + this.ttlMs);
  }

  /** Forgets everything (an outlet, device or manager changed somewhere). */
  clear(): void {
    this.valid.clear();
  }
}

/** The customer reference of a POS body as the customer lookup takes it. */
export function toRef(body: { code?: string; phone?: string; customerId?: string }): CustomerRef {
  if (body.code !== undefined) return { code: body.code };
  if (body.phone !== undefined) return { phone: body.phone };
  if (body.customerId !== undefined) return { customerId: body.customerId };
  throw new AppError('validation_error', 'give exactly one of code, phone or customerId');
}

function tierOf(rules: ProgrammeRules, spend: number) {
  const tier = selectTier(rules, spend);
  return tier ? { name: tier.name, earnRateBp: tier.earnRateBp, spend } : null;
}

/** Checks that every context id given belongs to the merchant (404 otherwise, like any foreign id). */
export async function assertContext(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  context: PosContext,
): Promise<void> {
  if (!context.outletId && !context.deviceId && !context.managerId) return;
  const key = `${auth.merchantId}|${context.outletId ?? ''}|${context.deviceId ?? ''}|${context.managerId ?? ''}`;
  if (deps.contexts.has(key)) return;
  const foreign = await findForeignContext(deps.db, { merchantId: auth.merchantId, ...context });
  if (foreign.outlet)
    throw new AppError('outlet_not_found', 'outletId: outlet not found', { field: 'outletId' });
  if (foreign.device)
    throw new AppError('device_not_found', 'deviceId: device not found', { field: 'deviceId' });
  if (foreign.manager)
    throw new AppError('manager_not_found', 'managerId: manager not found', { field: 'managerId' });
  if (
    context.outletId &&
    context.deviceId &&
    foreign.deviceOutletId &&
    foreign.deviceOutletId !== context.outletId
  ) {
    throw new AppError('context_mismatch', 'deviceId belongs to another outlet than outletId', {
      field: 'deviceId',
    });
  }
  deps.contexts.add(key);
}

/** The answer of an earlier request with the same Idempotency-Key, found while resolving its customer. */
class StoredAnswer extends Error {
  constructor(readonly result: unknown) {
    super('stored answer');
  }
}

/**
 * Finds the customer a POS names. Failed code lookups count against the API key; once over the
 * limit every code lookup of that key gets 429 until the window passes. `beforeCodeFailure` runs
 * before a miss is counted and may throw instead (a miss that is no guess).
 */
export async function resolveCustomer(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  ref: CustomerRef,
  options: { beforeCodeFailure?: () => Promise<void> } = {},
): Promise<CustomerState> {
  const isCode = 'code' in ref;
  // A key this process already saw refused is not looked up at all.
  const known = isCode ? deps.codeFailures.knownRefusal(auth.keyId) : 0;
  if (known > 0) throw codeLookupsRefused(known);
  const tierWindowDays = auth.rules.tiers.length > 0 ? auth.rules.tierWindowDays : null;
  const request = { merchantId: auth.merchantId, ref, tierWindowDays };
  const customer = deps.reads
    ? await deps.reads.customers.run(request)
    : await findCustomerState(deps.db, request);
  if (!isCode) {
    if (customer) return customer;
    throw new AppError('customer_not_found', 'Customer not found');
  }
  // Lookups by code run at once, however many, and are judged after: a miss counts as a failure
  // and is answered 404 only while the key's failures are within the limit; a hit is shown only
  // while the key is under it. So parallel guesses learn no more than the limit allows, and a busy
  // till's lookups in flight take nothing from it.
  if (customer) {
    const seconds = await deps.codeFailures.refusal(auth.keyId);
    if (seconds > 0) throw codeLookupsRefused(seconds);
    return customer;
  }
  // A miss that is no guess (a parallel duplicate of a request that consumed the code) is answered
  // as the duplicate it is and not counted.
  await options.beforeCodeFailure?.();
  const seconds = await deps.codeFailures.fail(auth.keyId);
  if (seconds > 0) throw codeLookupsRefused(seconds);
  throw new AppError('code_not_found', 'Code not found, expired or already used');
}

function codeLookupsRefused(retryAfter: number): AppError {
  return rateLimitedError('Too many failed code lookups; try again later', retryAfter);
}

/** The campaigns that may apply to a purchase of the customer now, on the merchant's clocks. */
export async function campaignMoment(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  customerId: string,
): Promise<CampaignMoment> {
  const at = new Date();
  const campaigns = await deps.campaigns.forPurchase({ merchantId: auth.merchantId, customerId, at });
  return { campaigns, timeZone: auth.timeZone, at };
}

/** POST /customers/resolve */
export async function resolveForPos(deps: IntegrationDeps, auth: MerchantAuth, body: ResolveCustomerBody) {
  const [customer] = await Promise.all([
    resolveCustomer(deps, auth, toRef(body)),
    assertContext(deps, auth, body),
  ]);
  return {
    customer: { id: customer.id, name: customer.name, phone: customer.phone },
    balance: balanceOf(customer),
    tier: tierOf(auth.rules, customer.spend),
  };
}

function balanceOf(customer: CustomerState) {
  return { available: customer.available, pending: customer.pending, held: customer.held };
}

/**
 * A purchase that names a hold (holdId) redeems the hold's points: for its quote they count as
 * available (they are this purchase's), and redeemPoints is the hold's points (if given, it must
 * equal them). The commit checks the hold again under lock.
 */
async function withHold(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  customer: CustomerState,
  body: { holdId?: string; redeemPoints?: number },
): Promise<{ customer: CustomerState; redeemPoints: number }> {
  if (body.holdId === undefined) return { customer, redeemPoints: body.redeemPoints ?? 0 };
  const hold = await findHoldForRedeem(deps.db, {
    merchantId: auth.merchantId,
    holdId: body.holdId,
    customerId: customer.id,
  });
  if (body.redeemPoints !== undefined && body.redeemPoints !== hold.points) {
    throw new AppError('hold_mismatch', `redeemPoints: the hold is for ${hold.points} points`, {
      field: 'redeemPoints',
      held: hold.points,
      requested: body.redeemPoints,
    });
  }
  return {
    customer: { ...customer, available: customer.available + hold.points },
    redeemPoints: hold.points,
  };
}

/** POST /purchases/quote: the same computation commit applies, writing nothing. */
export async function quoteForPos(deps: IntegrationDeps, auth: MerchantAuth, body: QuotePurchaseBody) {
  const [customer] = await Promise.all([
    resolveCustomer(deps, auth, toRef(body.customer)),
    assertContext(deps, auth, body),
  ]);
  const { customer: spender, redeemPoints } = await withHold(deps, auth, customer, body);
  const quote = quoteForCustomer({
    rules: auth.rules,
    customer: spender,
    receipt: body.receipt,
    redeemPoints,
    context: body,
    ...(await campaignMoment(deps, auth, customer.id)),
  });
  return {
    earnPoints: quote.earnPoints,
    earnBreakdown: quote.earnBreakdown,
    maxRedeemPoints: quote.maxRedeemPoints,
    redeemPoints: quote.redeemPoints,
    discount: quote.discount,
    payable: quote.payable,
    eligibleAmount: quote.eligibleAmount,
    earnRateBp: quote.earnRateBp,
    customer: { id: customer.id },
    balance: balanceOf(customer),
    tier: tierOf(auth.rules, customer.spend),
  };
}

/**
 * One statement for a commit naming its customer by id or phone: the stored answer of a finished
 * request with this key (to replay; 422 for another body) or, when the key is unused, the
 * customer's state (null: no such customer).
 */
async function findReplayOrCustomer(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  ref: CustomerRef,
  idempotency: { key: string; hash: string },
): Promise<{ stored: unknown } | { customer: CustomerState | null }> {
  const tierWindowDays = auth.rules.tiers.length > 0 ? auth.rules.tierWindowDays : null;
  const request = { merchantId: auth.merchantId, ref, tierWindowDays, key: idempotency.key };
  const row = deps.reads
    ? await deps.reads.replays.run(request)
    : await readReplayOrCustomer(deps.db, request);
  const stored = storedResultOf(row ?? undefined, idempotency.hash);
  if (stored) return { stored };
  if (!row || row.id === null) return { customer: null };
  return { customer: row as CustomerState };
}

/** A commit request on its way: what it names, its key, and the commit once its customer is known. */
interface CommitCall {
  deps: IntegrationDeps;
  auth: MerchantAuth;
  body: CommitPurchaseBody;
  ref: CustomerRef;
  idempotency: { key: string; hash: string };
  commit: (customer: CustomerState) => Promise<CommitResult & { replayed?: boolean }>;
}

/** POST /purchases: idempotent commit. */
export async function commitForPos(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  body: CommitPurchaseBody,
  idempotencyKey: string,
): Promise<{ result: CommitResult; isReplay: boolean }> {
  const hash = requestHash('purchases.commit', body);
  const ref = toRef(body.customer);
  const commit = async (customer: CustomerState) => {
    // With holdId, the hold's points are the redeem (withHold checks the hold and redeemPoints).
    const { customer: spender, redeemPoints } = await withHold(deps, auth, customer, body);
    return commitPurchase(deps.db, {
      merchantId: auth.merchantId,
      rules: auth.rules,
      customer: spender,
      code: 'code' in ref ? ref.code : undefined,
      orderId: body.orderId,
      receipt: body.receipt,
      redeemPoints,
      holdId: body.holdId,
      context: body,
      idempotencyKey,
      requestHash: hash,
      batcher: deps.commits,
      ...(await campaignMoment(deps, auth, customer.id)),
    });
  };
  const call: CommitCall = { deps, auth, body, ref, idempotency: { key: idempotencyKey, hash }, commit };
  const outcome = 'code' in ref ? await commitByCode(call) : await commitByIdOrPhone(call);
  if (!outcome.isReplay) deps.notifier?.poke();
  return outcome;
}

/**
 * A commit by id or phone: the lookup has no side effects, so one statement reads the stored
 * answer and the customer together, and the commit is the second and last round trip.
 */
async function commitByIdOrPhone(call: CommitCall): Promise<{ result: CommitResult; isReplay: boolean }> {
  const { deps, auth, body, ref, idempotency, commit } = call;
  // Usually answered from its cache; a replay is answered without it, so its failure must not go
  // unhandled.
  const context = assertContext(deps, auth, body);
  context.catch(() => {});
  const found = await findReplayOrCustomer(deps, auth, ref, idempotency);
  if ('stored' in found) return { result: found.stored as CommitResult, isReplay: true };
  await context;
  if (!found.customer) throw new AppError('customer_not_found', 'Customer not found');
  return outcomeOf(await commit(found.customer));
}

/**
 * A commit by one-time code: a code lookup counts against the API key, so it runs only once no
 * stored answer was found.
 */
async function commitByCode(call: CommitCall): Promise<{ result: CommitResult; isReplay: boolean }> {
  const { deps, auth, body, ref, idempotency, commit } = call;
  const options = { merchantId: auth.merchantId, ...idempotency };
  return runIdempotent(deps.db, options, async () => {
    // A code used up by a request with this same key, running (409) or committed (its answer), is
    // no guess: it must not count against the key's code lookups.
    const beforeCodeFailure = async () => {
      const stored = await findConcurrentResult(deps.db, options);
      if (stored) throw new StoredAnswer(stored);
    };
    let customer: CustomerState;
    try {
      [customer] = await Promise.all([
        resolveCustomer(deps, auth, ref, { beforeCodeFailure }),
        assertContext(deps, auth, body),
      ]);
    } catch (error) {
      if (error instanceof StoredAnswer) return error.result as CommitResult & { replayed: true };
      throw error;
    }
    return commit(customer);
  });
}

/** POST /purchases/{id}/refunds: idempotent refund. */
export async function refundForPos(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  purchaseId: string,
  body: RefundPurchaseBody,
  idempotencyKey: string,
): Promise<{ result: RefundResult; isReplay: boolean }> {
  const hash = requestHash(`purchases.refund:${purchaseId.toLowerCase()}`, body);
  const outcome = await runIdempotent(
    deps.db,
    { merchantId: auth.merchantId, key: idempotencyKey, hash },
    async () => {
      await assertContext(deps, auth, body);
      return refundPurchase(deps.db, {
        merchantId: auth.merchantId,
        rules: auth.rules,
        purchaseId,
        amount: body.amount,
        items: body.items,
        context: body,
        idempotencyKey,
        requestHash: hash,
      });
    },
  );
  if (!outcome.isReplay) deps.notifier?.poke();
  return outcome;
}

/**
 * POST /customers: idempotent enrollment at the till. The customer joins (welcome points, referrer,
 * events) and the answer is stored with the Idempotency-Key in one transaction.
 */
export async function enrollForPos(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  body: EnrollCustomerBody,
  idempotencyKey: string,
): Promise<{ result: EnrollCustomerResponse; isReplay: boolean }> {
  const hash = requestHash('customers.enroll', body);
  const outcome = await runIdempotent(
    deps.db,
    { merchantId: auth.merchantId, key: idempotencyKey, hash },
    async () => {
      await assertContext(deps, auth, body);
      return runInIdempotentTransaction(
        deps.db,
        { merchantId: auth.merchantId, key: idempotencyKey, hash },
        async (trx): Promise<EnrollCustomerResponse> => {
          let referredBy: string | null = null;
          if (body.referralCode !== undefined) {
            referredBy = await findReferrer(trx, {
              merchantId: auth.merchantId,
              referralCode: body.referralCode,
            });
            if (!referredBy) {
              throw new AppError(
                'referral_code_not_found',
                'referralCode: no customer has this referral code',
                {
                  field: 'referralCode',
                },
              );
            }
          }
          const customer = await createCustomer(trx, {
            merchantId: auth.merchantId,
            phone: body.phone,
            name: body.name ?? null,
            birthDate: body.birthDate ?? null,
            referredBy,
            source: 'pos',
          });
          return {
            customer: {
              id: customer.id,
              phone: customer.phone,
              name: customer.name,
              referralCode: customer.referralCode,
            },
            balance: customer.balance,
          };
        },
      );
    },
  );
  if (!outcome.isReplay) deps.notifier?.poke();
  return outcome;
}
