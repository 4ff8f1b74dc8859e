-- kind: full
-- grain: product_id
-- audits: not_null(launch_date)
-- assert: base_price >= 0
-- description: Product catalogue, typed.
select
    cast(product_id as varchar) as product_id,
    sku,
    name,
    department,
    category,
    cast(base_price as double) as base_price,
    cast(launch_date as date) as launch_date,
    cast(discontinued_date as date) as discontinued_date
from source.products
