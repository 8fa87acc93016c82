import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { type ApiKeyAuthenticator, merchantOf } from '../../http/auth.js';
import { getPurchase } from '../ledger/ledger.service.js';
import { cancelHoldForPos, holdForPos } from './holds.integration.js';
import { CancelHoldBody, CreateHoldBody, HoldParams, HoldResponse } from './holds.schema.js';
import {
  CommitPurchaseBody,
  CommitResponse,
  EnrollCustomerBody,
  EnrollCustomerResponse,
  ErrorResponse,
  IdempotencyHeaders,
  PurchaseParams,
  PurchaseResponse,
  QuotePurchaseBody,
  QuoteResponse,
  RefundPurchaseBody,
  RefundResponse,
  ResolveCustomerBody,
  ResolveCustomerResponse,
} from './integration.schema.js';
import {
  commitForPos,
  enrollForPos,
  type IntegrationDeps,
  quoteForPos,
  refundForPos,
  resolveForPos,
} from './integration.service.js';

/** Answers an idempotent create: 201, with `Idempotent-Replayed: true` when it replays a finished one. */
function created<T>(reply: FastifyReply, outcome: { result: T; isReplay: boolean }): FastifyReply {
  if (outcome.isReplay) reply.header('Idempotent-Replayed', 'true');
  return reply.status(201).send(outcome.result);
}

const errors = { 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse, 422: ErrorResponse };
const security = [{ apiKey: [] }];

/** The POS integration API (`X-Api-Key`), mounted at /api/v1/integration. */
export function integrationRoutes(
  deps: IntegrationDeps & { apiKeys: ApiKeyAuthenticator },
): FastifyPluginAsyncZod {
  return async (app) => {
    app.decorateRequest('merchantAuth', null);
    app.addHook('preHandler', async (request) => {
      request.merchantAuth = await deps.apiKeys.authenticate(request);
    });

    app.post(
      '/customers/resolve',
      {
        schema: {
          tags: ['integration'],
          summary: 'Find a customer by one-time code, phone or id',
          security,
          body: ResolveCustomerBody,
          response: { 200: ResolveCustomerResponse, ...errors, 429: ErrorResponse },
        },
      },
      async (request) => resolveForPos(deps, merchantOf(request), request.body),
    );

    app.post(
      '/customers',
      {
        schema: {
          tags: ['integration'],
          summary: 'Enroll a customer at the till: welcome points, referral code (idempotent)',
          security,
          headers: IdempotencyHeaders,
          body: EnrollCustomerBody,
          response: { 201: EnrollCustomerResponse, ...errors, 409: ErrorResponse, 429: ErrorResponse },
        },
      },
      async (request, reply) => {
        const outcome = await enrollForPos(
          deps,
          merchantOf(request),
          request.body,
          request.headers['idempotency-key'],
        );
        return created(reply, outcome);
      },
    );

    app.post(
      '/purchases/quote',
      {
        schema: {
          tags: ['integration'],
          summary: 'What a purchase would earn and redeem (writes nothing)',
          security,
          body: QuotePurchaseBody,
          response: { 200: QuoteResponse, ...errors, 429: ErrorResponse },
        },
      },
      async (request) => quoteForPos(deps, merchantOf(request), request.body),
    );

    app.post(
      '/purchases',
      {
        schema: {
          tags: ['integration'],
          summary: 'Commit a purchase: earn and/or redeem points (idempotent)',
          security,
          headers: IdempotencyHeaders,
          body: CommitPurchaseBody,
          response: {
            200: CommitResponse,
            201: CommitResponse,
            ...errors,
            409: ErrorResponse,
            429: ErrorResponse,
          },
        },
      },
      async (request, reply) =>
        created(
          reply,
          await commitForPos(deps, merchantOf(request), request.body, request.headers['idempotency-key']),
        ),
    );

    app.get(
      '/purchases/:id',
      {
        schema: {
          tags: ['integration'],
          summary: 'A purchase with its refunds',
          security,
          params: PurchaseParams,
          response: { 200: PurchaseResponse, ...errors },
        },
      },
      async (request) => ({
        purchase: await getPurchase(deps.db, {
          merchantId: merchantOf(request).merchantId,
          purchaseId: request.params.id,
        }),
      }),
    );

    app.post(
      '/purchases/:id/refunds',
      {
        schema: {
          tags: ['integration'],
          summary: 'Refund part or all of a purchase (idempotent)',
          security,
          params: PurchaseParams,
          headers: IdempotencyHeaders,
          body: RefundPurchaseBody,
          response: { 201: RefundResponse, ...errors, 409: ErrorResponse },
        },
      },
      async (request, reply) =>
        created(
          reply,
          await refundForPos(
            deps,
            merchantOf(request),
            request.params.id,
            request.body,
            request.headers['idempotency-key'],
          ),
        ),
    );

    app.post(
      '/holds',
      {
        schema: {
          tags: ['integration'],
          summary: 'Reserve points before payment; a purchase with holdId redeems them (idempotent)',
          security,
          headers: IdempotencyHeaders,
          body: CreateHoldBody,
          response: { 201: HoldResponse, ...errors, 409: ErrorResponse, 429: ErrorResponse },
        },
      },
      async (request, reply) =>
        created(
          reply,
          await holdForPos(deps, merchantOf(request), request.body, request.headers['idempotency-key']),
        ),
    );

    app.post(
      '/holds/:id/cancel',
      {
        schema: {
          tags: ['integration'],
          summary: 'Cancel a hold: its points become available again (repeatable)',
          security,
          params: HoldParams,
          body: CancelHoldBody,
          response: { 200: HoldResponse, ...errors, 409: ErrorResponse },
        },
      },
      async (request) => cancelHoldForPos(deps, merchantOf(request), request.params.id, request.body),
    );
  };
}
