-- kind: full
-- description: Every source order line, typed, with the reason staging rejects it (null = kept) and the unknown-product flag.
-- column reject_reason: null_order_id | null_product_id | duplicate_line (exact copies after the first) | null_quantity | non_positive_quantity | implausible_quantity (above 1,000,000) | null_price | non_finite_price (NaN, infinity) | negative_price | discount_out_of_range | missing_order (no such order) | order_rejected (its order was rejected).
-- column unknown_product: The product id is not in staging.products; the line is kept.
with numbered as (
    select
        cast(order_id as varchar) as order_id,
        cast(product_id as varchar) as product_id,
        cast(quantity as bigint) as raw_quantity,
        try_cast(quantity as integer) as quantity,
        cast(unit_price as double) as unit_price,
        coalesce(cast(discount as double), 0) as discount,
        row_number() over (
            partition by order_id, product_id, quantity, unit_price, discount
        ) as copy_number
    from source.order_items
),
orders as (
    select order_id, bool_or(reject_reason is null) as clean
    from checks.orders
    group by order_id
),
products as (
    select distinct product_id from checks.products where reject_reason is null
)
select
    l.order_id,
    l.product_id,
    l.quantity,
    l.unit_price,
    l.discount,
    case
        when l.order_id is null then 'null_order_id'
        when l.product_id is null then 'null_product_id'
        when l.copy_number > 1 then 'duplicate_line'
        when l.raw_quantity is null then 'null_quantity'
        when l.raw_quantity <= 0 then 'non_positive_quantity'
        when l.raw_quantity > 1000000 then 'implausible_quantity'
        when l.unit_price is null then 'null_price'
        when not isfinite(l.unit_price) then 'non_finite_price'
        when l.unit_price < 0 then 'negative_price'
        when not isfinite(l.discount) or l.discount < 0 or l.discount > 1
            then 'discount_out_of_range'
        when o.order_id is null then 'missing_order'
        when not o.clean then 'order_rejected'
    end as reject_reason,
    p.product_id is null as unknown_product
from numbered as l
left join orders as o on o.order_id = l.order_id
left join products as p on p.product_id = l.product_id
