import { type Kysely, sql } from 'kysely';

// job_runs: one row per periodic job and scheduled tick. The scheduler claims the tick by inserting
// the row, so a job runs once per tick however many worker replicas fire at that moment, even when
// one replica's timer fires after another replica's run has already finished (an advisory lock alone
// only keeps the runs apart, not from running twice).
// outbox_events.trace_context: the W3C trace context (traceparent, tracestate) of the request that
// wrote the event, so the worker continues the trace through the delivery (OpenTelemetry, optional).
// Expand only: releases before this one do not know the table or the column and are not bothered.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
create table job_runs (
  job text not null,
  -- The tick of the job's schedule this run is for (not when the timer fired).
  scheduled_at timestamptz not null,
  worker_id text not null,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  error text,
  primary key (job, scheduled_at)
);
-- Filled from the transaction's loyalty.trace_context setting, which the API sets (set_config, local
-- to the transaction) only while tracing is on; otherwise null.
alter table outbox_events add column trace_context jsonb
  default nullif(current_setting('loyalty.trace_context', true), '')::jsonb;
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw('alter table outbox_events drop column if exists trace_context; drop table if exists job_runs;')
    .execute(db);
}
