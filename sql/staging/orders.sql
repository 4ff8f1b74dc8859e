-- kind: view
-- description: Orders, one row per order_id; timestamps normalised to UTC and a UTC date; rejected orders are in staging.rejects. (checks.orders audits the kept rows: at least one, unique order_id, a date, a known status; there an incremental build audits only the days it computed.)
-- pii: is_guest none: whether an id is missing, not who
-- pii: unknown_customer none: whether the id is known, not who
-- column customer_id: Null for guest checkouts.
-- column order_date: Day of the order (UTC).
-- column is_guest: No customer id.
-- column unknown_customer: The customer id is not in staging.customers; the order is kept.
select
    o.order_id,
    o.customer_id,
    o.order_ts,
    o.order_date,
    o.channel,
    o.status,
    o.customer_id is null as is_guest,
    o.customer_id is not null and c.customer_id is null as unknown_customer
from checks.orders as o
left join (select customer_id from checks.customers where reject_reason is null) as c
    on c.customer_id = o.customer_id
where o.reject_reason is null
