-- kind: incremental_by_time
-- time_column: period
-- lookback: 3
-- grain: product_id, period
-- audits: row_count(min=1)
-- assert: units >= 0
-- description: Daily units of non-cancelled orders per product, zero-filled from launch to discontinuation (or the last order date).
-- column units: Units ordered (returned orders count as demand).
-- column on_promo: A promotion covered the product that day.
with lines as (
    select i.product_id, o.order_date as period, o.order_id, i.quantity, i.unit_price, i.discount
    from staging.order_items as i
    join staging.orders as o on o.order_id = i.order_id
    where o.status <> 'cancelled'
      and o.order_date between $start_date and $end_date
),
daily as (
    select
        product_id,
        period,
        sum(quantity) as units,
        sum(quantity * unit_price * (1 - discount)) as revenue,
        count(distinct order_id) as orders,
        avg(unit_price) as avg_price,
        avg(discount) as avg_discount
    from lines
    group by product_id, period
),
last_day as (
    select max(order_date) as day from staging.orders
),
calendar as (
    select
        p.product_id,
        cast(unnest(generate_series(
            cast(greatest(p.launch_date, $start_date) as timestamp),
            cast(least(coalesce(p.discontinued_date, l.day), l.day, $end_date) as timestamp),
            interval 1 day
        )) as date) as period
    from staging.products as p
    cross join last_day as l
),
promos as (
    select c.product_id, c.period, max(pr.discount_pct) as promo_discount_pct
    from calendar as c
    join staging.promotions as pr
      on pr.product_id = c.product_id and c.period between pr.start_date and pr.end_date
    group by c.product_id, c.period
)
select
    c.product_id,
    c.period,
    cast(coalesce(d.units, 0) as bigint) as units,
    coalesce(d.revenue, 0) as revenue,
    cast(coalesce(d.orders, 0) as bigint) as orders,
    d.avg_price,
    d.avg_discount,
    pr.product_id is not null as on_promo,
    coalesce(pr.promo_discount_pct, 0) as promo_discount_pct
from calendar as c
left join daily as d on d.product_id = c.product_id and d.period = c.period
left join promos as pr on pr.product_id = c.product_id and pr.period = c.period
