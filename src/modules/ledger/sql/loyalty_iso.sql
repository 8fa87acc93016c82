-- Timestamps in answers as ISO 8601 UTC with milliseconds, the same as JavaScript's toISOString().
create or replace function loyalty_iso(p_ts timestamptz) returns text
language sql immutable as $fn$
  select to_char(p_ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$fn$;
