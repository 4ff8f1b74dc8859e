-- kind: view
-- grain: customer_id
-- description: Customers, typed; duplicate and id-less rows are in staging.rejects. May be empty (guest-only shops).
-- column customer_id: Customer id as text, so integer and string ids join alike.
-- column signup_date: Null when the source has none; profiles then measure tenure from the first order.
select customer_id, signup_date, country, channel, segment
from checks.customers
where reject_reason is null
