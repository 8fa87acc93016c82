-- Whether a commit payload (the argument of loyalty_commit_purchase) asks for nothing but a plain
-- purchase's writes: an earn breakdown (it may earn, redeem, redeem a hold, grant campaign points
-- or all of these). loyalty_commit_plain_purchases commits these together, once the customer's rows
-- and its hold agree (see there). SQL and immutable, so a query that calls it has its expression
-- inlined.
create or replace function loyalty_plain_purchase(p jsonb) returns boolean
language sql immutable as $fn$
  select jsonb_typeof(p->'earnBreakdown') = 'array'
$fn$;
