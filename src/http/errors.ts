import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { isDatabaseUnavailable } from '../db/availability.js';

/** Stable error codes clients can switch on, and the HTTP status each maps to. */
export const ERROR_STATUS = {
  validation_error: 400,
  invalid_json: 400,
  unauthorized: 401,
  invalid_credentials: 401,
  invalid_refresh_token: 401,
  refresh_token_reused: 401,
  invalid_init_data: 401,
  account_disabled: 403,
  forbidden: 403,
  not_found: 404,
  bad_url: 400,
  referral_code_not_found: 400,
  uri_too_long: 414,
  customer_not_found: 404,
  code_not_found: 404,
  purchase_not_found: 404,
  campaign_not_found: 404,
  hold_not_found: 404,
  merchant_not_found: 404,
  outlet_not_found: 404,
  device_not_found: 404,
  manager_not_found: 404,
  customer_not_registered: 404,
  bot_not_connected: 404,
  method_not_allowed: 405,
  idempotency_key_in_use: 409,
  duplicate_order_id: 409,
  customer_exists: 409,
  birth_date_already_set: 409,
  user_exists: 409,
  merchant_required: 409,
  conflict: 409,
  hold_not_active: 409,
  hold_expired: 409,
  hold_customer_mismatch: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  insufficient_points: 422,
  redeem_limit_exceeded: 422,
  idempotency_key_reuse: 422,
  refund_exceeds_remaining: 422,
  purchase_fully_refunded: 422,
  refund_item_not_found: 422,
  refund_items_unavailable: 422,
  refund_mode_conflict: 422,
  context_mismatch: 422,
  hold_mismatch: 422,
  merchant_suspended: 403,
  rate_limited: 429,
  internal_error: 500,
  maintenance: 503,
  read_only: 503,
  unavailable: 503,
  database_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** The one error services throw: a stable code, a human message, optional details. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/** The error body every route answers with. */
export function errorBody(code: string, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

interface FieldIssue {
  field: string;
  message: string;
}

/** A key as it appears in a field name; odd keys are quoted with ':' and spaces escaped, so "field: why" stays parseable. */
function keySegment(key: string): string {
  if (/^[\w$-]+$/.test(key)) return `.${key}`;
  const quoted = JSON.stringify(key).replace(
    /[:\s]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `[${quoted}]`;
}

function fieldName(prefix: string, path: ReadonlyArray<PropertyKey>): string {
  const rest = path.map((p) => (typeof p === 'number' ? `[${p}]` : keySegment(String(p)))).join('');
  return `${prefix}${rest}`.replace(/^\./, '').replace(/^body\./, '') || prefix;
}

/** Turns validation failures into 400 naming the field, and hides the internals of 5xx. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof AppError) {
      if (error.headers) reply.headers(error.headers);
      return reply.status(error.status).send(errorBody(error.code, error.message, error.details));
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const context = error.validationContext ?? 'body';
      const issues: FieldIssue[] = error.validation.map((v) => {
        const segments = String(v.instancePath)
          .split('/')
          .filter((p: string) => p !== '');
        const path: PropertyKey[] = segments.map((p: string) => (/^\d+$/.test(p) ? Number(p) : p));
        const keys = (v.params as { keys?: string[] }).keys;
        // An unknown key names the key itself, not its parent object.
        if (v.keyword === 'unrecognized_keys' && keys?.[0]) path.push(keys[0]);
        const field = fieldName(context === 'body' ? '' : context, path) || context;
        return { field, message: v.message };
      });
      const first = issues[0];
      const message = first ? `${first.field}: ${first.message}` : 'Invalid request';
      return reply.status(400).send(errorBody('validation_error', message, { issues }));
    }
    if (
      error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      (error instanceof SyntaxError && error.statusCode === 400)
    ) {
      return reply.status(400).send(errorBody('invalid_json', `Body is not valid JSON: ${error.message}`));
    }
    if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      return reply
        .status(400)
        .send(errorBody('validation_error', 'body: expected a JSON object, got an empty body'));
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send(errorBody('payload_too_large', 'Request body is too large'));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply
        .status(415)
        .send(errorBody('unsupported_media_type', 'Content-Type must be application/json'));
    }
    const pgCode = (error as { code?: string }).code;
    if (pgCode === '22P05' || pgCode === '22021') {
      return reply
        .status(400)
        .send(errorBody('validation_error', 'body: text contains characters that cannot be stored'));
    }
    if (isDatabaseUnavailable(error)) {
      // PostgreSQL is away (stopped, restarting, unreachable): the client may retry; no stack in the log.
      request.log.warn({ err: error.message }, 'database unavailable');
      request.failure = `database unavailable: ${error.message}`;
      return reply
        .status(503)
        .header('retry-after', '5')
        .send(errorBody('database_unavailable', 'The database is unavailable; retry shortly'));
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500 && !isResponseSerializationError(error)) {
      return reply.status(status).send(errorBody('validation_error', error.message));
    }
    request.log.error({ err: error }, 'request failed');
    request.failure = `${error.name}: ${error.message}`;
    return reply.status(500).send(errorBody('internal_error', 'Internal server error'));
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send(errorBody('not_found', `Route ${request.method} ${request.url.split('?')[0]} not found`)),
  );
}
