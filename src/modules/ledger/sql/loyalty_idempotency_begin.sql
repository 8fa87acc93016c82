-- Idempotency inside the operation's own transaction. A transaction-scoped advisory lock on
-- (merchant, key) lets exactly one request with a key run; a second one at the same time gets
-- idempotency_key_in_use at once instead of waiting. Once the first committed, the stored result
-- is replayed (same body) or the key is refused (other body). Returns the stored result or null.
create or replace function loyalty_idempotency_begin(p_merchant uuid, p_key text, p_hash text) returns jsonb
language plpgsql as $fn$
declare
  v_hash text;
  v_result jsonb;
begin
  if p_key is null then return null; end if;
  if not pg_try_advisory_xact_lock(hashtextextended(p_merchant::text || '/' || p_key, 0)) then
    raise exception 'idempotency_key_in_use' using detail = '{}';
  end if;
  select f.request_hash, f.result into v_hash, v_result from loyalty_idempotency_find(p_merchant, p_key) f;
  if v_hash is null then return null; end if;
  if v_hash <> p_hash then
    raise exception 'idempotency_key_reuse' using detail = '{}';
  end if;
  return v_result || jsonb_build_object('replayed', true);
end $fn$;
