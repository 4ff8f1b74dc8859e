-- kind: full
-- grain: product_id, recommended_product_id
-- assert: score > 0 and score <= 1
-- assert: rank >= 1
-- description: Item-item recommendations from co-purchase: products bought in the same non-cancelled orders, scored by cosine similarity (co-orders / sqrt(orders of each)), at least $recommendation_min_support co-orders, the top $recommendation_top_k per product.
-- column support: Non-cancelled orders holding both products.
-- column score: Cosine similarity of the two products' order sets, 0-1.
-- column rank: 1 = the most similar.
with baskets as (
    select distinct i.order_id, i.product_id
    from staging.order_items as i
    join staging.orders as o on o.order_id = i.order_id
    where o.status <> 'cancelled'
),
product_orders as (
    select product_id, count(*) as orders from baskets group by product_id
),
pairs as (
    select a.product_id, b.product_id as recommended_product_id, count(*) as support
    from baskets as a
    join baskets as b on a.order_id = b.order_id and a.product_id <> b.product_id
    group by all
    having count(*) >= $recommendation_min_support
),
scored as (
    select
        p.product_id,
        p.recommended_product_id,
        p.support,
        p.support / sqrt(pa.orders * pb.orders) as score
    from pairs as p
    join product_orders as pa on pa.product_id = p.product_id
    join product_orders as pb on pb.product_id = p.recommended_product_id
)
select
    product_id,
    recommended_product_id,
    cast(row_number() over (
        partition by product_id order by score desc, support desc, recommended_product_id
    ) as integer) as rank,
    score,
    support
from scored
qualify rank <= $recommendation_top_k
