-- kind: full
-- description: Every source promotion, typed, with the reason staging rejects it (null = kept). An absent promotions file reads as empty.
-- column reject_reason: null_product_id | null_dates | end_before_start | discount_out_of_range (outside 0-100).
select
    cast(product_id as varchar) as product_id,
    cast(start_date as date) as start_date,
    cast(end_date as date) as end_date,
    cast(discount_pct as double) as discount_pct,
    case
        when product_id is null then 'null_product_id'
        when start_date is null or end_date is null then 'null_dates'
        when end_date < start_date then 'end_before_start'
        when discount_pct is null or discount_pct < 0 or discount_pct > 100
            then 'discount_out_of_range'
    end as reject_reason
from source.promotions
