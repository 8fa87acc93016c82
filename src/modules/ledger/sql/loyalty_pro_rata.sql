-- Pro-rata share of points for a cumulative refunded amount; exact at the end (refunded = total).
create or replace function loyalty_pro_rata(p_points bigint, p_refunded bigint, p_total bigint) returns bigint
language sql immutable as $fn$
  select case when p_refunded >= p_total then p_points
              else floor(p_points::numeric * p_refunded / p_total)::bigint end
$fn$;
