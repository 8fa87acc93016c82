-- Group commit: several purchases (each the argument of loyalty_commit_purchase) in one transaction
-- and one round trip, so they share one WAL flush. Returns one answer per item, in the order given:
-- {"i": index, "result": ...} or {"i": index, "error": {"code": SQLSTATE, "message", "detail",
-- "constraint"}}. Each item runs in its own subtransaction (an exception block): one that fails is
-- rolled back alone and the others commit. Items run in customer id order, which is the order in
-- which they lock balance rows, so batches that run at the same time on the same customers wait for
-- each other instead of deadlocking; items of one customer keep the order they were given in.
-- A statement timeout or a lost connection is not caught: the whole batch fails.
-- The answers are gathered in an array and turned into one jsonb at the end: appending each to a
-- jsonb array copied all the answers before it (16 commits: a tenth of the batch's work).
create or replace function loyalty_commit_purchases(p_items jsonb) returns jsonb
language plpgsql as $fn$
declare
  v_item record;
  v_out jsonb[] := '{}';
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
      v_out := array_append(v_out, jsonb_build_object('i', v_item.i,
        'result', loyalty_commit_purchase(v_item.value)));
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text,
        v_detail = pg_exception_detail, v_constraint = constraint_name;
      v_out := array_append(v_out, jsonb_build_object('i', v_item.i, 'error', jsonb_build_object(
        'code', v_state, 'message', v_message, 'detail', nullif(v_detail, ''),
        'constraint', nullif(v_constraint, ''))));
    end;
  end loop;
  return to_jsonb(v_out);
end $fn$;
