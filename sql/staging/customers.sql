-- kind: full
-- grain: customer_id
-- description: Customers as delivered, typed; may be empty (guest-only shops).
-- column customer_id: Customer id as text, so integer and string ids join alike.
select
    cast(customer_id as varchar) as customer_id,
    cast(signup_date as date) as signup_date,
    country,
    channel,
    segment
from source.customers
