-- Refunds part or all that is left of a purchase (docs/decisions/002-ledger-provenance.md).
-- p: merchantId, purchaseId, amount? | items? ([{index | sku, amount}]), idempotencyKey?, requestHash?,
--    outletId?, deviceId?, managerId?, lifetimeDays?, excludedCategories?
-- Both legs are cumulative shares of the purchase, so its refunds add up exactly to its figures:
-- by amount, pro rata to refunded / total; by receipt lines, to the refunded eligible amount /
-- eligible amount (excluded lines earned nothing and were not paid with points).
--  - return: the redeemed points go back to the lots they were taken from, latest taken first,
--    keeping those lots' expiry (loyalty_land_points);
--  - revoke: of the earned points, what left the earned lot by expiry is gone, not owed; the rest
--    is taken from the earned lot (pending or available), then from the available balance, never
--    below zero; the shortfall is unrecovered and settled later (loyalty_settle_debts,
--    loyalty_land_points).
-- Lock order: balance row -> purchase rows -> that customer's lots.
-- One generic plan per connection for its lookups by key (see loyalty_customer_state).
create or replace function loyalty_refund_purchase(p jsonb) returns jsonb
language plpgsql set plan_cache_mode = force_generic_plan as $fn$
declare
  v_merchant uuid := (p->>'merchantId')::uuid;
  v_customer uuid;
  v_purchase purchases%rowtype;
  v_refund uuid := loyalty_uuidv7();
  v_rest bigint;
  v_amount bigint := 0;
  v_eligible_part bigint := 0;
  v_lines bigint[];
  v_count integer;
  v_by_items boolean;
  v_after bigint;
  v_eligible_after bigint;
  v_return bigint;
  v_revoke_total bigint;
  v_gone bigint := 0;
  v_owed bigint;
  v_left bigint;
  v_direct bigint := 0;
  v_swap bigint := 0;
  v_part bigint;
  v_entry bigint;
  v_available bigint;
  v_lot point_lots%rowtype;
  v_item jsonb;
  v_i integer := 0;
  v_index integer;
  v_line jsonb;
  v_line_amount bigint;
  v_created timestamptz;
  v_result jsonb;
  r record;
begin
  v_result := loyalty_idempotency_begin(v_merchant, p->>'idempotencyKey', p->>'requestHash');
  if v_result is not null then return v_result; end if;

  -- The customer's balance row is locked first, as by every write of that customer; customer_id
  -- never changes, so it is read before.
  select customer_id into v_customer from purchases
  where id = (p->>'purchaseId')::uuid and merchant_id = v_merchant;
  if not found then
    raise exception 'purchase_not_found' using detail = '{}';
  end if;
  perform 1 from balances where customer_id = v_customer for update;
  -- Gone while this waited (the customer deleted, with their merchant): as a moment later.
  if not found then
    raise exception 'purchase_not_found' using detail = '{}';
  end if;
  select * into v_purchase from purchases where id = (p->>'purchaseId')::uuid for update;
  perform loyalty_expire_customer(v_merchant, v_customer, now());
  perform loyalty_release_holds(v_merchant, v_customer, now());

  v_rest := v_purchase.total - v_purchase.refunded_amount;
  if v_rest <= 0 then
    raise exception 'purchase_fully_refunded' using detail = '{}';
  end if;
  v_count := coalesce(jsonb_array_length(v_purchase.receipt->'items'), 0);

  if jsonb_typeof(p->'items') = 'array' then
    if v_count = 0 then
      raise exception 'refund_items_unavailable' using detail = '{"field": "items"}';
    end if;
    if v_purchase.refunded_amount > 0 and v_purchase.refunded_lines is null then
      raise exception 'refund_mode_conflict' using detail = '{"field": "items"}';
    end if;
    v_lines := coalesce(v_purchase.refunded_lines, array_fill(0::bigint, array[v_count]));
    for v_item in select value from jsonb_array_elements(p->'items') loop
      if v_item ? 'index' then
        v_index := (v_item->>'index')::integer;
        if v_index >= v_count then
          raise exception 'refund_item_not_found'
            using detail = jsonb_build_object('field', format('items.%s.index', v_i))::text;
        end if;
      else
        -- The first line with this sku that has something left to refund.
        select e.n - 1 into v_index
        from jsonb_array_elements(v_purchase.receipt->'items') with ordinality as e(line, n)
        where e.line->>'sku' = v_item->>'sku' and (e.line->>'amount')::bigint > v_lines[e.n]
        order by e.n limit 1;
        if not found then
          raise exception 'refund_item_not_found'
            using detail = jsonb_build_object('field', format('items.%s.sku', v_i))::text;
        end if;
      end if;
      v_line := v_purchase.receipt->'items'->v_index;
      v_line_amount := (v_item->>'amount')::bigint;
      if v_line_amount > (v_line->>'amount')::bigint - v_lines[v_index + 1] then
        raise exception 'refund_exceeds_remaining'
          using detail = jsonb_build_object('field', format('items.%s.amount', v_i),
            'remaining', (v_line->>'amount')::bigint - v_lines[v_index + 1], 'requested', v_line_amount)::text;
      end if;
      v_lines[v_index + 1] := v_lines[v_index + 1] + v_line_amount;
      v_amount := v_amount + v_line_amount;
      if coalesce(v_purchase.line_eligible[v_index + 1],
                  not coalesce((v_line->>'excluded')::boolean, false)
                  and not coalesce(p->'excludedCategories' ? (v_line->>'category'), false)) then
        v_eligible_part := v_eligible_part + v_line_amount;
      end if;
      v_i := v_i + 1;
    end loop;
    v_by_items := true;
  else
    v_amount := coalesce((p->>'amount')::bigint, v_rest);
    if v_amount > v_rest then
      raise exception 'refund_exceeds_remaining'
        using detail = jsonb_build_object('field', 'amount', 'remaining', v_rest, 'requested', v_amount)::text;
    end if;
    v_by_items := v_purchase.refunded_lines is not null;
    if v_by_items then
      -- After refunds by line, an amount can only be all that is left: those lines are known.
      if v_amount < v_rest then
        raise exception 'refund_mode_conflict' using detail = '{"field": "amount"}';
      end if;
      v_lines := array(select (e.line->>'amount')::bigint
                       from jsonb_array_elements(v_purchase.receipt->'items') with ordinality as e(line, n)
                       order by e.n);
      v_eligible_part := v_purchase.eligible_amount - v_purchase.refunded_eligible;
    end if;
  end if;

  v_after := v_purchase.refunded_amount + v_amount;
  v_eligible_after := case when v_by_items then v_purchase.refunded_eligible + v_eligible_part
                           else loyalty_pro_rata(v_purchase.eligible_amount, v_after, v_purchase.total) end;
  if v_by_items and v_after < v_purchase.total then
    v_return := case when v_purchase.eligible_amount = 0 then 0 else
      floor(v_purchase.redeemed_points::numeric * v_eligible_after / v_purchase.eligible_amount)::bigint end;
    v_revoke_total := case when v_purchase.eligible_amount = 0 then 0 else
      floor(v_purchase.earned_points::numeric * v_eligible_after / v_purchase.eligible_amount)::bigint end;
  else
    v_return := loyalty_pro_rata(v_purchase.redeemed_points, v_after, v_purchase.total);
    v_revoke_total := loyalty_pro_rata(v_purchase.earned_points, v_after, v_purchase.total);
  end if;
  v_return := v_return - v_purchase.returned_points;

  insert into refunds (id, merchant_id, purchase_id, customer_id, amount, returned_points, revoked_points,
                       unrecovered_points, outlet_id, device_id, manager_id)
  values (v_refund, v_merchant, v_purchase.id, v_customer, v_amount, 0, 0, 0,
          (p->>'outletId')::uuid, (p->>'deviceId')::uuid, (p->>'managerId')::uuid)
  returning created_at into v_created;

  -- Return first, so a refund that both returns and revokes nets out before anything is lost.
  v_left := v_return;
  for r in
    select lot_id, -sum(points) as outstanding from lot_moves
    where purchase_id = v_purchase.id and kind in ('redeem', 'refund_return')
    group by lot_id having sum(points) < 0
    order by max(id) filter (where kind = 'redeem') desc
  loop
    exit when v_left = 0;
    v_part := least(v_left, r.outstanding);
    perform loyalty_land_points(v_merchant, v_customer, r.lot_id, v_part, 'refund_return', v_purchase.id, v_refund);
    v_left := v_left - v_part;
  end loop;
  -- Purchases committed before lots recorded their moves: their points come back as a new lot.
  perform loyalty_add_points(v_merchant, v_customer, v_left, 'refund_return', 'return',
                             (p->>'lifetimeDays')::integer, v_purchase.id, v_refund, null);

  -- Revoke. Landing points above may have settled this purchase's debts: read it again.
  select * into v_purchase from purchases where id = v_purchase.id;
  -- The earned lots: the base earn and one per campaign that granted points (id order).
  select coalesce(-sum(m.points), 0) into v_gone from lot_moves m
  where m.kind = 'expire'
    and m.lot_id in (select id from point_lots where purchase_id = v_purchase.id and source = 'earn');
  v_owed := greatest(0, v_revoke_total - v_gone);
  v_left := greatest(0, v_owed - v_purchase.revoked_points - v_purchase.unrecovered_points);
  for v_lot in
    select * from point_lots where purchase_id = v_purchase.id and source = 'earn' order by id for update
  loop
    exit when v_left = 0;
    continue when v_lot.remaining = 0 or v_lot.state not in ('pending', 'active');
    v_part := least(v_left, v_lot.remaining);
    v_entry := loyalty_entry(v_merchant, v_customer, 'refund_revoke',
                             case when v_lot.state = 'pending' then 'pending' else 'available' end,
                             -v_part, v_purchase.id, v_refund, v_lot.id, null);
    perform loyalty_move(v_entry, v_lot.id, -v_part, 'refund_revoke', v_purchase.id);
    update balances
    set pending = pending - case when v_lot.state = 'pending' then v_part else 0 end,
        available = available - case when v_lot.state = 'pending' then 0 else v_part end
    where customer_id = v_customer;
    v_direct := v_direct + v_part;
    v_left := v_left - v_part;
  end loop;
  if v_left > 0 then
    select available into v_available from balances where customer_id = v_customer;
    v_swap := least(v_left, v_available);
    perform loyalty_take_points(v_merchant, v_customer, v_swap, 'refund_revoke', v_purchase.id, v_refund, null);
    update balances set available = available - v_swap where customer_id = v_customer;
    v_left := v_left - v_swap;
  end if;

  update refunds set returned_points = v_return, revoked_points = v_direct + v_swap, unrecovered_points = v_left
  where id = v_refund;
  update purchases
  set refunded_amount = v_after,
      refunded_eligible = v_eligible_after,
      refunded_lines = case when v_by_items then v_lines end,
      returned_points = returned_points + v_return,
      revoked_points = revoked_points + v_direct + v_swap,
      unrecovered_points = unrecovered_points + v_left,
      status = case when v_after >= total then 'refunded' else 'partially_refunded' end
  where id = v_purchase.id;
  perform loyalty_settle_debts(v_merchant, v_customer);
  update balances set updated_at = now() where customer_id = v_customer;

  v_result := jsonb_build_object(
    'refund', jsonb_build_object(
      'id', v_refund, 'purchaseId', v_purchase.id, 'orderId', v_purchase.order_id, 'amount', v_amount,
      'returnedPoints', v_return, 'revokedPoints', v_direct + v_swap,
      'unrecoveredPoints', v_left, 'createdAt', loyalty_iso(v_created)),
    'balance', loyalty_balance_json(v_customer));

  insert into outbox_events (merchant_id, type, payload)
  values (v_merchant, 'purchase.refunded', jsonb_build_object(
    'refundId', v_refund, 'purchaseId', v_purchase.id, 'orderId', v_purchase.order_id,
    'customerId', v_customer, 'amount', v_amount, 'returnedPoints', v_return,
    'revokedPoints', v_direct + v_swap, 'unrecoveredPoints', v_left,
    'balance', v_result->'balance', 'occurredAt', loyalty_iso(v_created)));

  if p->>'idempotencyKey' is not null then
    insert into idempotency_keys (merchant_id, key, request_hash, result)
    values (v_merchant, p->>'idempotencyKey', p->>'requestHash', v_result);
  end if;
  return v_result;
end $fn$;
