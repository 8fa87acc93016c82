-- Group commit: several purchases (each the argument of loyalty_commit_purchase) in one transaction
-- and one round trip, so they share one WAL flush. Returns one answer per item, in the order given:
-- {"i": index, "result": ...} or {"i": index, "error": {"code": SQLSTATE, "message", "detail",
-- "constraint"}}. Each item runs in its own subtransaction (an exception block): one that fails is
-- rolled back alone and the others commit. Items run in customer id order, which is the order in
-- which they lock balance rows, so batches that run at the same time on the same customers wait for
-- each other instead of deadlocking; items of one customer keep the order they were given in.
-- A statement timeout or a lost connection is not caught: the whole batch fails.
create or replace function loyalty_commit_purchases(p_items jsonb) returns jsonb
language plpgsql as $fn$
declare
  v_item record;
  v_out jsonb := '[]'::jsonb;
  v_state text;
  v_message text;
  v_detail text;
  v_constraint text;
begin
  for v_item in
    select e.value, e.ordinality - 1 as i from jsonb_array_elements(p_items) with ordinality e
    order by (e.value->>'customerId')::uuid, e.ordinality
  loop
    begin
      v_out := v_out || jsonb_build_array(jsonb_build_object('i', v_item.i,
        'result', loyalty_commit_purchase(v_item.value)));
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text,
        v_detail = pg_exception_detail, v_constraint = constraint_name;
      v_out := v_out || jsonb_build_array(jsonb_build_object('i', v_item.i, 'error', jsonb_build_object(
        'code', v_state, 'message', v_message, 'detail', nullif(v_detail, ''),
        'constraint', nullif(v_constraint, ''))));
    end;
  end loop;
  return v_out;
end $fn$;
