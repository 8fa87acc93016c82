import { type Kysely, sql } from 'kysely';

// Counters of every process (API replicas and workers) added up in PostgreSQL, so the API's
// /metrics shows the whole fleet's figures (external_requests_total is counted by the workers).
// Expand only: releases before this one do not know the table and are not bothered by it.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
create table metric_counters (
  metric text not null,
  -- The series' labels as a JSON object (low-cardinality labels only).
  labels jsonb not null default '{}',
  value double precision not null default 0,
  updated_at timestamptz not null default now(),
  primary key (metric, labels)
);
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('drop table if exists metric_counters;').execute(db);
}
