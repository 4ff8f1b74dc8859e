-- kind: incremental_by_time
-- time_column: period
-- lookback: 3
-- grain: product_id, period
-- audits: row_count(min=1)
-- assert: units >= 0
-- description: Units of non-cancelled orders (returned orders count) per product and period ($freq: day, week or month), zero-filled from launch (or the product's first order, if earlier; never before the first order in the data) to discontinuation (or the last order date; later orders extend it). Products missing from staging.products are kept from their first sale.
-- column period: First day of the period.
-- column units: Units of non-cancelled orders; 0 when none.
-- column revenue: Sum of quantity * unit_price * (1 - discount).
-- column orders: Distinct non-cancelled orders with the product.
-- column avg_price: Revenue per unit actually paid; null without sales.
-- column avg_discount: Unit-weighted discount fraction; null without sales.
-- column on_promo: A planned promotion overlaps the period.
-- column promo_discount_pct: Deepest overlapping promotion, 0-100; 0 without one.
with lines as (
    -- the window's sales: a line and its order share order_date, so both sides read only
    -- the window's months
    select
        i.product_id,
        cast(date_trunc($freq, i.order_date) as date) as period,
        i.order_date,
        i.order_id,
        i.quantity,
        i.quantity * i.unit_price * (1 - i.discount) as paid,
        i.discount
    from staging.order_items as i
    join staging.orders as o on o.order_id = i.order_id
    where o.status <> 'cancelled' and i.order_date >= $start_date and o.order_date >= $start_date
),
bounds as (
    -- first and last order of each product over all history (cancelled ones too: the product
    -- was on sale), without joining the orders
    select
        coalesce(p.product_id, s.product_id) as product_id,
        greatest(least(p.launch_date, s.first_sale, history.last_day), history.first_day)
            as first_day,
        greatest(least(coalesce(p.discontinued_date, history.last_day), history.last_day),
            s.last_sale) as last_day
    from staging.products as p
    full join (
        select product_id, min(order_date) as first_sale, max(order_date) as last_sale
        from staging.order_items group by product_id
    ) as s on s.product_id = p.product_id
    cross join (
        select min(order_date) as first_day, max(order_date) as last_day from staging.orders
    ) as history
),
calendar as (
    select
        product_id,
        cast(unnest(generate_series(
            date_trunc($freq, greatest(first_day, $start_date)),
            date_trunc($freq, least(last_day, $end_date)),
            cast('1 ' || $freq as interval)
        )) as date) as period
    from bounds
    where first_day is not null and greatest(first_day, $start_date) <= least(last_day, $end_date)
),
sales as (
    select
        product_id,
        period,
        sum(quantity) as units,
        sum(paid) as revenue,
        count(distinct order_id) as orders,
        sum(paid) / sum(quantity) as avg_price,
        sum(discount * quantity) / sum(quantity) as avg_discount
    from lines
    group by product_id, period
),
promos as (
    select c.product_id, c.period, max(pr.discount_pct) as promo_discount_pct
    from calendar as c
    join staging.promotions as pr
        on pr.product_id = c.product_id
        and pr.start_date < c.period + cast('1 ' || $freq as interval)
        and pr.end_date >= c.period
    group by c.product_id, c.period
)
select
    c.product_id,
    c.period,
    cast(coalesce(s.units, 0) as bigint) as units,
    coalesce(s.revenue, 0) as revenue,
    cast(coalesce(s.orders, 0) as bigint) as orders,
    s.avg_price,
    s.avg_discount,
    pr.product_id is not null as on_promo,
    coalesce(pr.promo_discount_pct, 0) as promo_discount_pct
from calendar as c
left join sales as s on s.product_id = c.product_id and s.period = c.period
left join promos as pr on pr.product_id = c.product_id and pr.period = c.period
