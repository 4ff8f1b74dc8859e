-- kind: full
-- description: Every source order, typed (timestamps as UTC), with the reason staging rejects it (null = kept).
-- column reject_reason: null_order_id | duplicate_order_id | null_order_ts | future_order_ts (after the day the model is built) | unknown_status.
with numbered as (
    select
        cast(order_id as varchar) as order_id,
        cast(customer_id as varchar) as customer_id,
        cast(order_ts as timestamp) as order_ts,
        cast(order_ts as date) as order_date,
        channel,
        lower(trim(status)) as status,
        row_number() over (
            partition by cast(order_id as varchar) order by order_ts, status, customer_id
        ) as copy_number
    from source.orders
)
select
    order_id,
    customer_id,
    order_ts,
    order_date,
    coalesce(channel, 'unknown') as channel,
    status,
    case
        when order_id is null then 'null_order_id'
        when copy_number > 1 then 'duplicate_order_id'
        when order_ts is null then 'null_order_ts'
        when order_date > current_date then 'future_order_ts'
        when status is null or status not in ('completed', 'cancelled', 'returned')
            then 'unknown_status'
    end as reject_reason
from numbered
