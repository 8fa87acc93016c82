-- The finished request with this Idempotency-Key: its request hash and stored answer, or nulls.
-- A purchase keeps its key on its own row (no separate record to write on the hottest path);
-- refunds, and purchases committed before that, have a row in idempotency_keys. Keys are one
-- namespace per merchant: a key used by a purchase is refused to a refund with another body.
-- Both lookups are by unique key. Without enable_seqscan = off, a connection that planned them while
-- the table was empty or small (a new install, a fresh bench database) keeps a generic plan that
-- scans the whole table until the next ANALYZE: 4 ms a call at 15,000 purchases, measured
-- (docs/performance.md, "Plans cached while a table was small").
-- One generic plan per connection for its lookups by key (see loyalty_customer_state).
create or replace function loyalty_idempotency_find(p_merchant uuid, p_key text, out request_hash text,
  out result jsonb)
language plpgsql stable set enable_seqscan = off set plan_cache_mode = force_generic_plan as $fn$
begin
  select k.request_hash, k.result into request_hash, result from idempotency_keys k
  where k.merchant_id = p_merchant and k.key = p_key;
  if found then return; end if;
  select p.request_hash, loyalty_purchase_answer(p) into request_hash, result from purchases p
  where p.merchant_id = p_merchant and p.idempotency_key = p_key;
end $fn$;
