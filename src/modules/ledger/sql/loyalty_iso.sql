-- Timestamps in answers as ISO 8601 UTC with milliseconds, the same as JavaScript's toISOString().
-- Stable, as to_char is: a SQL function is inlined into the expression that calls it only when its
-- body is no more volatile than it says. Declared immutable it was not, and every call parsed and
-- planned its body again (5% of a commit's PostgreSQL CPU, docs/performance.md).
create or replace function loyalty_iso(p_ts timestamptz) returns text
language sql stable as $fn$
  select to_char(p_ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$fn$;
