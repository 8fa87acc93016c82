-- Group commit: several purchases (each the argument of loyalty_commit_purchase) in one transaction
-- and one round trip, so they share one WAL flush. Returns one answer per item, in any order:
-- {"i": index, "result": ...} or {"i": index, "error": {"code": SQLSTATE, "message", "detail",
-- "constraint"}}.
-- First every balance row of the batch is locked, in customer id order: the order in which single
-- commits and other batches lock them, so batches that run at the same time on the same customers
-- wait for each other instead of deadlocking. Then the plain purchases (no hold, nothing due, campaign
-- budgets enough for the batch; see loyalty_commit_plain_purchases) are committed together, one
-- statement per table;
-- if any of them does not fit, that part is rolled back as a whole and they are committed one by one
-- with the rest.
-- The rest run in customer id order, each in its own subtransaction (an exception block): one that
-- fails is rolled back alone and the others commit. Items of one customer keep the order they were
-- given in (a plain item is always its customer's first).
-- A statement timeout or a lost connection is not caught: the whole batch fails.
-- The answers are gathered in an array and turned into one jsonb at the end: appending each to a
-- jsonb array copied all the answers before it (16 commits: a tenth of the batch's work).
create or replace function loyalty_commit_purchases(p_items jsonb) returns jsonb
language plpgsql as $fn$
declare
  v_item record;
  v_out jsonb[] := '{}';
  v_done integer[];
  v_state text;
  v_message text;
  v_detail text;
  v_constraint text;
begin
  perform 1 from balances
  where customer_id = any(array(select (e->>'customerId')::uuid from jsonb_array_elements(p_items) e))
  order by customer_id
  for update;

  if exists (select 1 from jsonb_array_elements(p_items) e where loyalty_plain_purchase(e)) then
    begin
      v_out := loyalty_commit_plain_purchases(p_items);
    exception when others then
      v_out := '{}';
    end;
  end if;
  v_done := array(select (a->>'i')::integer from unnest(v_out) a);

  for v_item in
    select e.value, e.ordinality - 1 as i from jsonb_array_elements(p_items) with ordinality e
    order by (e.value->>'customerId')::uuid, e.ordinality
  loop
    continue when v_item.i = any(v_done);
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
