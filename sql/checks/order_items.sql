-- kind: incremental_by_time
-- time_column: order_date
-- lookback: 3
-- audits: same_row_count(source.order_items)
-- audits: not_null(order_id, product_id, quantity, unit_price, order_date, where="reject_reason is null")
-- assert: reject_reason is not null or (quantity > 0 and discount between 0 and 1)
-- description: Every source order line, typed, with its order's date, the reason staging rejects it (null = kept) and the unknown-product flag. Built by order date like checks.orders: an incremental build checks the lines of the last days' orders, and lines without a dated order again (those the extended version had, and those in the files that arrived).
-- pii: reject_reason none: a reason code, not a person
-- column order_date: Day of the line's order; null when there is no such order (or it has no timestamp): those lines are checked every run.
-- column reject_reason: null_order_id | null_product_id | duplicate_line (exact copies after the first) | null_quantity | non_positive_quantity | implausible_quantity (above $max_line_quantity, [checks] max_line_quantity in wh.toml) | null_price | non_finite_price (NaN, infinity) | negative_price | discount_out_of_range | missing_order (no such order) | order_rejected (its order was rejected).
-- column unknown_product: The product id is not in staging.products; the line is kept.
with order_copies as (
    select order_id, order_date, reject_reason from checks.orders where not $incremental
    union all
    -- every copy of the orders of the window's days, and of orders without a date
    select order_id, order_date, reject_reason from checks.orders
    where $incremental and order_id in (
        select order_id from checks.orders where order_date >= $start_date or order_date is null
    )
),
orders as (
    select order_id, bool_or(reject_reason is null) as clean, min(order_date) as order_date
    from order_copies
    group by order_id
),
-- An incremental run computes the lines of the window's orders and the lines without a
-- dated order (their time is null, so they are in every window). It finds the latter without
-- comparing all history with all orders: they are the lines the version it extends (`this`)
-- had without a date, and lines in the files that arrived since (`arrived.order_items`).
dated as (
    -- of the order ids this run looks at, those checks.orders has a date for
    select order_id from checks.orders
    where $incremental and order_date is not null and order_id in (
        select order_id from this where order_date is null
        union all
        select cast(order_id as varchar) from arrived.order_items
    )
),
redo as (
    -- the window's orders, and orders that still have no date. An order that got a date
    -- before the window is in neither: its lines go missing, the row count differs from the
    -- source and the model is rebuilt in full, as for any late row.
    select order_id from orders
    where $incremental and order_date is not null and order_id is not null
    union
    select order_id from this
    where $incremental and order_date is null and order_id is not null
        and order_id not in (select order_id from dated)
),
lines as (
    select * from source.order_items where not $incremental
    union all
    select * from source.order_items
    where $incremental
        and (order_id is null or cast(order_id as varchar) in (select order_id from redo))
    union all
    -- new lines whose order is not there (yet)
    select * from arrived.order_items
    where $incremental and order_id is not null
        and cast(order_id as varchar) not in (select order_id from redo)
        and cast(order_id as varchar) not in (select order_id from dated)
),
numbered as (
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
    from lines
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
    o.order_date,
    case
        when l.order_id is null then 'null_order_id'
        when l.product_id is null then 'null_product_id'
        when l.copy_number > 1 then 'duplicate_line'
        when l.raw_quantity is null then 'null_quantity'
        when l.raw_quantity <= 0 then 'non_positive_quantity'
        when l.raw_quantity > $max_line_quantity then 'implausible_quantity'
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
