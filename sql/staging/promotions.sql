-- kind: full
-- description: Promotion windows per product.
select
    cast(product_id as varchar) as product_id,
    cast(start_date as date) as start_date,
    cast(end_date as date) as end_date,
    cast(discount_pct as double) as discount_pct
from source.promotions
