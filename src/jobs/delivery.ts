/** How one delivery attempt to an outside service ended (also the `result` label of external_requests_total). */
export type DeliveryOutcome = 'ok' | 'http_error' | 'rate_limited' | 'timeout' | 'error';

/** The result of one attempt; the dispatcher records it and decides about retries. */
export interface DeliveryResult {
  result: DeliveryOutcome;
  /** HTTP status (or Telegram error_code) when there was an answer. */
  statusCode?: number;
  durationMs: number;
  /** Human-readable reason of a failure (never contains secrets). */
  error?: string;
  /** The first bytes of the response body (at most 512 characters). */
  responseExcerpt?: string;
  /** The far side asked to wait this long before the next try (429 Retry-After, Telegram retry_after). */
  retryAfterSeconds?: number;
  /** Retrying cannot help (410 Gone, endpoint disabled, bot blocked by the user): stop now. */
  isPermanent?: boolean;
}

/** Cuts a response body to what an attempt row keeps. */
export function excerpt(text: string, max = 512): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
