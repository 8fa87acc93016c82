-- A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids of
-- append-only tables made this way land at the right edge of their primary key's B-tree, so an
-- insert touches the same few hot pages instead of a random one (fewer full-page images in the WAL,
-- a smaller working set). PostgreSQL 18 has uuidv7(); this works on 15+.
create or replace function loyalty_uuidv7() returns uuid
language sql volatile as $fn$
  select encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
              from 1 for 6),
      52, 1), 53, 1),
    'hex')::uuid
$fn$;
