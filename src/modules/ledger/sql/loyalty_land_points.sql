-- Puts p_points back into lot p_lot, the lot they were taken from, as an entry of p_kind for
-- p_purchase: a refund returning the points its purchase redeemed ('refund_return'), or a refund
-- giving back points it had taken in place of its purchase's spent points ('refund_revoke', > 0).
-- Then, in this order:
--  1. When the lot was earned by a purchase whose refunds still owe points, these are the very
--     points owed, back: they are revoked at once for that purchase, settling first what it left
--     unrecovered, then what it took from other lots in their place, which goes back to those lots
--     (latest first, through this same function).
--  2. What is left keeps the lot's expiry: in a lot past its expiry it expires at once.
-- So a returned point never gets a fresh lifetime, and no point is owed and gone at the same time.
-- The caller holds the balance row lock.
create or replace function loyalty_land_points(p_merchant uuid, p_customer uuid, p_lot bigint, p_points bigint,
  p_kind text, p_purchase uuid, p_refund uuid) returns void
language plpgsql as $fn$
declare
  v_lot point_lots%rowtype;
  v_owner purchases%rowtype;
  v_owner_refund uuid;
  v_entry bigint;
  v_left bigint := p_points;
  v_settle bigint;
  v_swapped bigint;
  v_give bigint;
  v_part bigint;
  r record;
begin
  if p_points <= 0 then return; end if;
  select * into v_lot from point_lots where id = p_lot for update;
  v_entry := loyalty_entry(p_merchant, p_customer, p_kind, 'available', p_points, p_purchase, p_refund, p_lot, null);
  perform loyalty_move(v_entry, p_lot, p_points, p_kind, p_purchase);
  update balances set available = available + p_points, updated_at = now() where customer_id = p_customer;

  if v_lot.source = 'earn' then
    select * into v_owner from purchases where id = v_lot.purchase_id and refunded_amount > 0 for update;
    if found then
      -- Taken in place of its earned lots (the base earn and its campaign lots): from other lots.
      select coalesce(-sum(points), 0) into v_swapped from lot_moves
      where purchase_id = v_owner.id and kind = 'refund_revoke'
        and lot_id not in (select id from point_lots where purchase_id = v_owner.id and source = 'earn');
      v_settle := least(v_left, v_owner.unrecovered_points);
      v_give := least(v_left - v_settle, v_swapped);
      if v_settle + v_give > 0 then
        select id into v_owner_refund from refunds where purchase_id = v_owner.id
        order by created_at desc, id desc limit 1;
        v_entry := loyalty_entry(p_merchant, p_customer, 'refund_revoke', 'available', -(v_settle + v_give),
                                 v_owner.id, v_owner_refund, p_lot, null);
        perform loyalty_move(v_entry, p_lot, -(v_settle + v_give), 'refund_revoke', v_owner.id);
        update balances set available = available - (v_settle + v_give) where customer_id = p_customer;
        update purchases set unrecovered_points = unrecovered_points - v_settle,
                             revoked_points = revoked_points + v_settle
        where id = v_owner.id;
        v_left := v_left - v_settle - v_give;
        for r in
          select lot_id, -sum(points) as outstanding from lot_moves
          where purchase_id = v_owner.id and kind = 'refund_revoke'
            and lot_id not in (select id from point_lots where purchase_id = v_owner.id and source = 'earn')
          group by lot_id having sum(points) < 0
          order by max(id) desc
        loop
          exit when v_give = 0;
          v_part := least(v_give, r.outstanding);
          perform loyalty_land_points(p_merchant, p_customer, r.lot_id, v_part, 'refund_revoke', v_owner.id,
                                      v_owner_refund);
          v_give := v_give - v_part;
        end loop;
      end if;
    end if;
  end if;

  if v_left > 0 and (v_lot.state = 'expired' or v_lot.expires_at <= now()) then
    v_entry := loyalty_entry(p_merchant, p_customer, 'expire', 'available', -v_left, null, null, p_lot, null);
    perform loyalty_move(v_entry, p_lot, -v_left, 'expire', null);
    update point_lots set state = 'expired' where id = p_lot;
    update balances set available = available - v_left where customer_id = p_customer;
  end if;
end $fn$;
