-- kind: full
-- description: Stock on hand and supplier lead time per product (empty when the optional file is absent).
select
    cast(product_id as varchar) as product_id,
    cast(on_hand as integer) as on_hand,
    cast(lead_time_days as integer) as lead_time_days
from source.inventory
where product_id is not null
