-- kind: full
-- grain: order_id
-- audits: accepted_values(status, 'completed', 'cancelled', 'returned'), row_count(min=1)
-- description: Orders with the timestamp normalised to a UTC date; guest orders keep a null customer.
-- column order_date: Day of the order (UTC).
select
    cast(order_id as varchar) as order_id,
    cast(customer_id as varchar) as customer_id,
    cast(order_ts as timestamp) as order_ts,
    cast(order_ts as date) as order_date,
    channel,
    lower(status) as status
from source.orders
