import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { findFreePort } from '../../src/db/embedded.js';
import { findLedgerViolations, findProvenanceViolations } from '../helpers/ledger.js';
import { killProcess, startProcess, type TestProcess } from '../helpers/process.js';

// What the fault scenarios share: the soak switch, real API and worker processes, a POS that keeps
// committing purchases over HTTP, and the audit that counts from the database what became of each
// commit. Figures come from the database and the receivers, never from logs.

/** FAULTS_SOAK=1 lengthens every scenario: more rounds, longer load. */
export const isSoak = process.env.FAULTS_SOAK === '1';

/** The default figure, or the soak's one under FAULTS_SOAK=1. */
export function soak<T>(normal: T, long: T): T {
  return isSoak ? long : normal;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `read` until `isDone` holds (errors count as not yet); throws after `timeoutMs`. */
export async function waitFor<T>(
  read: () => Promise<T>,
  isDone: (value: T) => boolean,
  timeoutMs: number,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await read();
      if (isDone(last as T)) return last as T;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`${what} not reached within ${timeoutMs} ms (last: ${String(last)})`);
    await sleep(100);
  }
}

/** An API process (`src/server.ts`, as production runs it) on a fixed port, restartable. */
export class ApiProcess {
  process: TestProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly args: string[],
  ) {}

  /** Picks a port and starts the API with `env` (DATABASE_URL at least) on top of quiet defaults. */
  static async start(env: Record<string, string>, args: string[] = []): Promise<ApiProcess> {
    const api = new ApiProcess(await findFreePort(), env, args);
    await api.restart();
    return api;
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the process (again) and resolves once it listens. */
  async restart(): Promise<void> {
    this.process = startProcess(process.execPath, ['--import', 'tsx', 'src/server.ts', ...this.args], {
      env: {
        PORT: String(this.port),
        HOST: '127.0.0.1',
        SEED_DEMO: '0',
        LOG_LEVEL: 'warn',
        DATABASE_POOL_MAX: '5',
        ...this.env,
      },
    });
    await this.process.waitForOutput(/Press Ctrl-C to stop/, 120_000);
  }

  /** Whether the process still runs. */
  get isRunning(): boolean {
    const child = this.process?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** SIGKILL: no shutdown, requests in flight are cut off. */
  async kill(): Promise<void> {
    if (this.process) await killProcess(this.process);
  }

  /** SIGTERM and the exit code (0 for a clean shutdown). */
  async stop(): Promise<number | null> {
    if (!this.process || !this.isRunning) return this.process?.child.exitCode ?? null;
    this.process.child.kill('SIGTERM');
    return this.process.exited;
  }
}

/** GET `path` of a running process: the status and parsed body (null when not JSON). */
export async function getJson(
  base: string,
  path: string,
  timeoutMs = 5_000,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text (/metrics)
    body = text;
  }
  return { status: res.status, body };
}

/** A POS purchase commit: its Idempotency-Key, body, and what the till got back. */
export interface CommitAttempt {
  key: string;
  orderId: string;
  body: Record<string, unknown>;
  /** HTTP status, or null when no answer came (connection refused or reset, or the client timed out). */
  status: number | null;
  code?: string;
  purchaseId?: string;
  error?: string;
  startedAt: number;
  ms: number;
}

/** Who the POS load commits for: the merchant's key and outlet, and its customers. */
export interface PosTarget {
  apiKey: string;
  outletId: string;
  customerIds: string[];
}

/** Sends one commit with its Idempotency-Key; never throws (a failure is an attempt without status). */
export async function sendCommit(
  base: string,
  target: PosTarget,
  attempt: Pick<CommitAttempt, 'key' | 'body'>,
  timeoutMs: number,
): Promise<Omit<CommitAttempt, 'key' | 'orderId' | 'body'>> {
  const startedAt = Date.now();
  try {
    const res = await fetch(`${base}/api/v1/integration/purchases`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': target.apiKey,
        'idempotency-key': attempt.key,
      },
      body: JSON.stringify(attempt.body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const json = (await res.json().catch(() => ({}))) as {
      error?: { code?: string };
      purchase?: { id?: string };
    };
    return {
      status: res.status,
      code: json.error?.code,
      purchaseId: json.purchase?.id,
      startedAt,
      ms: Date.now() - startedAt,
    };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return {
      status: null,
      error: cause?.code ?? (error instanceof Error ? error.name : String(error)),
      startedAt,
      ms: Date.now() - startedAt,
    };
  }
}

/**
 * Tills committing purchases without pause, each with a fresh Idempotency-Key and orderId. Some
 * commits also redeem a few points, so crashes meet both halves of the ledger. Every attempt is kept.
 */
export class PosLoad {
  readonly attempts: CommitAttempt[] = [];
  /** Connections refused (no server listening), sent again by the till. */
  refused = 0;
  private isRunning = false;
  private started = 0;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly options: {
      base: () => string;
      target: PosTarget;
      concurrency: number;
      /** The client gives up after this long (the request timeout a till would use). */
      timeoutMs: number;
      /** Stop after this many commits (default: until stop()). */
      limit?: number;
    },
  ) {}

  start(): void {
    this.isRunning = true;
    this.loops = Array.from({ length: this.options.concurrency }, (_, worker) => this.loop(worker));
  }

  async stop(): Promise<void> {
    this.isRunning = false;
    await Promise.all(this.loops);
  }

  /** Resolves once every commit of a limited load has its answer. */
  async finished(): Promise<void> {
    await Promise.all(this.loops);
  }

  /** Attempts that got no HTTP answer, or an answer that leaves the outcome open (5xx). */
  unsettled(): CommitAttempt[] {
    return this.attempts.filter((a) => a.status === null || a.status >= 500);
  }

  private async loop(worker: number): Promise<void> {
    const { target } = this.options;
    for (
      let i = 0;
      this.isRunning && this.started < (this.options.limit ?? Number.POSITIVE_INFINITY);
      i += 1
    ) {
      this.started += 1;
      const customerId = target.customerIds[(worker + i) % target.customerIds.length] as string;
      const orderId = `fault-${randomUUID()}`;
      const body = {
        customer: { customerId },
        receipt: { total: 10_000 + ((worker * 7919 + i * 104_729) % 90_000) },
        redeemPoints: i % 3 === 0 ? 5 : 0,
        orderId,
        outletId: target.outletId,
      };
      const attempt: CommitAttempt = { key: randomUUID(), orderId, body, status: null, startedAt: 0, ms: 0 };
      for (;;) {
        const sent = await sendCommit(this.options.base(), target, attempt, this.options.timeoutMs);
        Object.assign(attempt, { error: undefined, code: undefined, purchaseId: undefined }, sent);
        // A refused connection reached no server: the till waits and sends the same request again.
        if (attempt.error !== 'ECONNREFUSED' || !this.isRunning) break;
        this.refused += 1;
        await sleep(250);
      }
      this.attempts.push(attempt);
    }
  }
}

/**
 * Sends each attempt again with its own Idempotency-Key and body until it gets 201 (a replay of
 * the stored answer when the first try had committed). Returns how many needed more than one try.
 */
export async function retryUntilCommitted(
  base: string,
  target: PosTarget,
  attempts: CommitAttempt[],
  timeoutMs = 60_000,
): Promise<{ retried: number; failures: string[] }> {
  const failures: string[] = [];
  const deadline = Date.now() + timeoutMs;
  await Promise.all(
    [0, 1, 2, 3].map(async (lane) => {
      for (let i = lane; i < attempts.length; i += 4) {
        const attempt = attempts[i] as CommitAttempt;
        for (;;) {
          const r = await sendCommit(base, target, attempt, 15_000);
          if (r.status === 201) {
            attempt.purchaseId = r.purchaseId;
            break;
          }
          if (Date.now() > deadline || (r.status !== null && r.status < 500 && r.status !== 409)) {
            failures.push(`${attempt.orderId}: ${r.status ?? r.error} ${r.code ?? ''}`);
            break;
          }
          await sleep(200);
        }
      }
    }),
  );
  return { retried: attempts.length, failures };
}

/** What the database holds for one orderId. */
interface OrderRecord {
  purchases: number;
  purchaseId: string | null;
  earnEntries: number;
  redeemEntries: number;
  events: number;
  keys: number;
}

/** The database's view of every orderId of a merchant (unique per merchant): entries, events, key records. */
export async function readOrders(db: Database, merchantId: string): Promise<Map<string, OrderRecord>> {
  const { rows } = await sql<{
    order_id: string;
    purchases: number;
    purchase_id: string | null;
    earn_entries: number;
    redeem_entries: number;
    events: number;
    keys: number;
  }>`
    select p.order_id, 1 as purchases, p.id::text as purchase_id,
      (select count(*) from ledger_entries e where e.purchase_id = p.id and e.kind = 'earn')::int as earn_entries,
      (select count(*) from ledger_entries e where e.purchase_id = p.id and e.kind = 'redeem')::int as redeem_entries,
      (select count(*) from outbox_events o where o.merchant_id = ${merchantId}
         and o.type = 'purchase.committed' and o.target is null and o.payload->>'orderId' = p.order_id)::int as events,
      -- The key's record: on the purchase row (the commit keeps it there), or a row of its own
      -- (refunds, and purchases committed before the purchase row kept it).
      ((select count(*) from idempotency_keys k where k.merchant_id = ${merchantId}
         and k.result->'purchase'->>'orderId' = p.order_id)
       + case when p.idempotency_key is not null then 1 else 0 end)::int as keys
    from purchases p where p.merchant_id = ${merchantId}
  `.execute(db);
  return new Map(
    rows.map((r) => [
      r.order_id,
      {
        purchases: r.purchases,
        purchaseId: r.purchase_id,
        earnEntries: r.earn_entries,
        redeemEntries: r.redeem_entries,
        events: r.events,
        keys: r.keys,
      },
    ]),
  );
}

/** A purchase written whole: its earn entry, its redeem entry when it redeemed, one event, one key record. */
function isComplete(record: OrderRecord, attempt: CommitAttempt): boolean {
  const redeems = Number(attempt.body.redeemPoints) > 0;
  return (
    record.purchases === 1 &&
    record.earnEntries === 1 &&
    record.redeemEntries === (redeems ? 1 : 0) &&
    record.events === 1 &&
    record.keys === 1
  );
}

/** What the audit of a set of commits found. */
export interface CommitAudit {
  /** Answered 201 but not in the ledger. */
  lost: string[];
  /** An orderId with more than one purchase, earn entry or event. */
  duplicated: string[];
  /** Written in part (a purchase without its entries, event or key record), or an id that differs from the answer. */
  partial: string[];
  /** No answer (or a 5xx) and nothing written. */
  absent: number;
  /** No answer (or a 5xx) and written whole. */
  complete: number;
}

/**
 * Checks every attempt against the database: a 201 must be there exactly once and whole, with the id
 * the till was told; an unsettled attempt must be absent or whole.
 */
export async function auditCommits(
  db: Database,
  merchantId: string,
  attempts: CommitAttempt[],
): Promise<CommitAudit> {
  const orders = await readOrders(db, merchantId);
  const audit: CommitAudit = { lost: [], duplicated: [], partial: [], absent: 0, complete: 0 };
  for (const attempt of attempts) {
    const record = orders.get(attempt.orderId);
    if (
      record &&
      (record.purchases > 1 || record.earnEntries > 1 || record.redeemEntries > 1 || record.events > 1)
    ) {
      audit.duplicated.push(attempt.orderId);
      continue;
    }
    if (attempt.status === 201) {
      if (!record) audit.lost.push(attempt.orderId);
      else if (!isComplete(record, attempt) || record.purchaseId !== attempt.purchaseId)
        audit.partial.push(attempt.orderId);
      continue;
    }
    if (!record) audit.absent += 1;
    else if (isComplete(record, attempt)) audit.complete += 1;
    else audit.partial.push(attempt.orderId);
  }
  return audit;
}

/** How many customers' balances and lots break the ledger's invariants (0 when all hold). */
export async function countLedgerViolations(db: Database): Promise<number> {
  const [balances, provenance] = await Promise.all([findLedgerViolations(db), findProvenanceViolations(db)]);
  return balances.length + provenance.length;
}
