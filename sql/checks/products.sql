-- kind: full
-- description: Every source product row, typed, with the reason staging rejects it (null = kept).
-- column reject_reason: null_product_id | duplicate_product_id | negative_base_price.
with numbered as (
    select
        cast(product_id as varchar) as product_id,
        sku,
        name,
        department,
        category,
        cast(base_price as double) as base_price,
        cast(launch_date as date) as launch_date,
        cast(discontinued_date as date) as discontinued_date,
        row_number() over (
            partition by cast(product_id as varchar) order by launch_date, sku, name
        ) as copy_number
    from source.products
)
select
    product_id,
    sku,
    name,
    coalesce(department, 'unknown') as department,
    coalesce(category, 'unknown') as category,
    base_price,
    launch_date,
    discontinued_date,
    case
        when product_id is null then 'null_product_id'
        when copy_number > 1 then 'duplicate_product_id'
        when base_price < 0 then 'negative_base_price'
    end as reject_reason
from numbered
