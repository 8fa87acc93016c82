import { AuthClient } from '../lib/api';

/** The admin panel's API client (operator session). */
export const adminApi = new AuthClient('/api/v1/admin', 'loyalty.admin.session');

export interface MerchantRow {
  id: string;
  name: string;
  status: string;
  createdAt: string;
  usage: {
    customers: number;
    purchases30d: number;
    revenue30d: number;
    apiKeys: number;
    webhookEndpoints: number;
  };
}

export interface OutboxCounts {
  pending: number;
  processing: number;
  delivered: number;
  dead: number;
  deadTotal: number;
}

export interface OutboxState {
  counts: OutboxCounts;
  paused: { global: boolean; merchants: Array<{ id: string; name: string; pausedAt: string }> };
}

export interface OutboxEvent {
  id: number;
  merchantId: string | null;
  type: string;
  target: string | null;
  endpointId: string | null;
  status: string;
  attempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
  deadAt: string | null;
}

export interface OutboxEventDetail extends OutboxEvent {
  payload: unknown;
  attemptLog: Array<{
    attempt: number;
    startedAt: string;
    durationMs: number;
    statusCode: number | null;
    result: string;
    error: string | null;
    responseExcerpt: string | null;
  }>;
}

export interface SwitchState {
  enabled: boolean;
  forcedByEnv: boolean;
  runtime: boolean;
}

export interface Switches {
  maintenance: SwitchState;
  readOnly: SwitchState;
  outboxPaused?: { enabled: boolean };
}

export interface SystemState {
  postgres: { ok: boolean; latencyMs: number | null; version: string | null };
  redis: { state: string };
  workers: Array<{
    workerId: string;
    hostname: string;
    lastSeenAt: string;
    isAlive: boolean;
    startedAt?: string;
  }>;
  lastAlert: { name: string; firing: boolean; lastSentAt: string } | null;
  switches: Switches;
  outbox: OutboxCounts | null;
}
