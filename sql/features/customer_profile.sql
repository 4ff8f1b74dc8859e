-- kind: full
-- grain: customer_id
-- audits: accepted_values(segment, 'champions', 'loyal', 'potential', 'new', 'at_risk', 'hibernating', 'no_orders')
-- assert: recency_score is null or recency_score between 1 and 5
-- description: One row per customer (with or without orders) as of $as_of_date (wh.toml as_of_date; default the last order date): order history, RFM and a named segment. Only orders on or before the as-of date count.
-- pii: segment quasi: a score of one customer: identifying only with the id
-- pii: recency_score quasi: a score of one customer
-- pii: frequency_score quasi: a score of one customer
-- pii: monetary_score quasi: a score of one customer
-- column orders: Non-cancelled orders.
-- column revenue: Paid revenue of non-cancelled orders (returns included: they were demand).
-- column avg_order_value: revenue / orders; null without orders.
-- column recency_days: Days from the last non-cancelled order to the as-of date.
-- column tenure_days: Days from signup (or the first order, if unknown) to the as-of date.
-- column mean_days_between_orders: (last - first order date) / (orders - 1); null below 2 orders.
-- column favourite_category: Category with the most units (ties: alphabetical).
-- column cancel_rate: Cancelled / all orders.
-- column return_rate: Returned / non-cancelled orders.
-- column recency_score: 1-5 quintile, 5 = most recent (RFM scores are null without orders).
-- column segment: champions | loyal | potential | new | at_risk | hibernating | no_orders.
with as_of as (
    select coalesce(cast($as_of_date as date), max(order_date)) as day from staging.orders
),
orders as (
    select o.*
    from staging.orders as o, as_of
    where o.customer_id is not null and o.order_date <= as_of.day
),
order_values as (
    select o.order_id, o.customer_id, o.order_date, o.status,
        sum(i.quantity) as units,
        sum(i.quantity * i.unit_price * (1 - i.discount)) as paid
    from orders as o
    join staging.order_items as i on i.order_id = o.order_id
    group by all
),
history as (
    select
        customer_id,
        min(order_date) filter (where status <> 'cancelled') as first_order_date,
        max(order_date) filter (where status <> 'cancelled') as last_order_date,
        count(*) filter (where status <> 'cancelled') as orders,
        coalesce(sum(units) filter (where status <> 'cancelled'), 0) as units,
        coalesce(sum(paid) filter (where status <> 'cancelled'), 0) as revenue,
        count(*) as all_orders,
        count(*) filter (where status = 'cancelled') as cancelled,
        count(*) filter (where status = 'returned') as returned
    from order_values
    group by customer_id
),
category_units as (
    select o.customer_id, p.category, sum(i.quantity) as units
    from orders as o
    join staging.order_items as i on i.order_id = o.order_id
    join staging.products as p on p.product_id = i.product_id
    where o.status <> 'cancelled'
    group by all
),
favourite as (
    select customer_id, arg_max(category, (units, -ascii(category))) as category
    from category_units
    group by customer_id
),
profile as (
    select
        c.customer_id,
        c.signup_date,
        c.country,
        c.channel,
        c.segment as customer_segment,
        a.day as as_of_date,
        h.first_order_date,
        h.last_order_date,
        coalesce(h.orders, 0) as orders,
        coalesce(h.units, 0) as units,
        coalesce(h.revenue, 0) as revenue,
        h.revenue / nullif(h.orders, 0) as avg_order_value,
        datediff('day', h.last_order_date, a.day) as recency_days,
        datediff('day', coalesce(c.signup_date, h.first_order_date), a.day) as tenure_days,
        datediff('day', h.first_order_date, h.last_order_date) / nullif(h.orders - 1, 0)
            as mean_days_between_orders,
        f.category as favourite_category,
        coalesce(h.cancelled / nullif(h.all_orders, 0), 0) as cancel_rate,
        coalesce(h.returned / nullif(h.orders, 0), 0) as return_rate
    from staging.customers as c
    cross join as_of as a
    left join history as h on h.customer_id = c.customer_id
    left join favourite as f on f.customer_id = c.customer_id
),
scored as (
    select
        *,
        case when orders > 0 then ntile(5) over (
            partition by orders > 0 order by recency_days desc, customer_id) end
            as recency_score,
        case when orders > 0 then ntile(5) over (
            partition by orders > 0 order by orders, customer_id) end as frequency_score,
        case when orders > 0 then ntile(5) over (
            partition by orders > 0 order by round(revenue, 6), customer_id) end as monetary_score
    from profile
)
select
    * exclude (recency_score, frequency_score, monetary_score),
    recency_days as recency,
    orders as frequency,
    revenue as monetary,
    recency_score,
    frequency_score,
    monetary_score,
    case
        when orders = 0 then 'no_orders'
        when recency_score >= 4 and frequency_score >= 4 then 'champions'
        when recency_score >= 3 and frequency_score >= 3 then 'loyal'
        when recency_score >= 4 and orders = 1 then 'new'
        when recency_score >= 3 then 'potential'
        when frequency_score >= 3 then 'at_risk'
        else 'hibernating'
    end as segment
from scored
