-- kind: full
-- audits: not_null(order_id, product_id), row_count(min=1)
-- assert: quantity > 0
-- description: Order lines, typed; exact duplicate lines and non-positive quantities removed.
select distinct
    cast(order_id as varchar) as order_id,
    cast(product_id as varchar) as product_id,
    cast(quantity as integer) as quantity,
    cast(unit_price as double) as unit_price,
    coalesce(cast(discount as double), 0) as discount
from source.order_items
where quantity > 0
