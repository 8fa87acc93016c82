/** What one operation ended with: an HTTP status (0 = no answer: transport error or exception). */
export interface Outcome {
  status: number;
  /** The error code of a non-2xx answer (`{"error": {"code"}}`), when there is one. */
  code?: string;
  /** The message of a transport error or exception. */
  message?: string;
}

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

const MAX_SAMPLES = 5;

/** Records the latency and outcome of every operation of one phase. */
export class PhaseRecorder {
  private readonly latencies: number[] = [];
  /** Count per non-2xx outcome, labelled `409 idempotency_key_in_use` or `error ECONNRESET`. */
  readonly failures = new Map<string, number>();
  /** The first few distinct messages of transport errors and exceptions. */
  readonly errorSamples: string[] = [];
  ok = 0;
  non2xx = 0;
  errors = 0;

  record(ms: number, outcome: Outcome): void {
    this.latencies.push(ms);
    if (outcome.status >= 200 && outcome.status < 300) {
      this.ok += 1;
      return;
    }
    if (outcome.status === 0) {
      this.errors += 1;
      const message = outcome.message ?? 'unknown error';
      if (this.errorSamples.length < MAX_SAMPLES && !this.errorSamples.includes(message)) {
        this.errorSamples.push(message);
      }
    } else {
      this.non2xx += 1;
    }
    const label = outcome.status === 0 ? 'error' : `${outcome.status} ${outcome.code ?? ''}`.trim();
    this.failures.set(label, (this.failures.get(label) ?? 0) + 1);
  }

  get completed(): number {
    return this.latencies.length;
  }

  /** Nearest-rank percentiles over every completed operation (any outcome). */
  percentiles(): Percentiles {
    const sorted = Float64Array.from(this.latencies).sort();
    const n = sorted.length;
    if (n === 0) return { p50: 0, p95: 0, p99: 0, max: 0, mean: 0 };
    const at = (p: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))] ?? 0;
    let sum = 0;
    for (const v of sorted) sum += v;
    return { p50: at(50), p95: at(95), p99: at(99), max: sorted[n - 1] ?? 0, mean: sum / n };
  }
}

/** `{"error": {"code": "..."}}` of an error answer, when the body is one. */
export function errorCodeOf(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null || !('error' in parsed)) return undefined;
    const error: unknown = parsed.error;
    if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
    return typeof error.code === 'string' ? error.code : undefined;
  } catch {
    return undefined;
  }
}

/** The message of anything thrown. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) {
    const code = 'code' in error && typeof error.code === 'string' ? `${error.code}: ` : '';
    return `${code}${error.message}`;
  }
  return String(error);
}
