-- kind: incremental_by_time
-- time_column: order_date
-- lookback: 3
-- audits: same_row_count(source.orders), row_count(min=1, where="reject_reason is null")
-- audits: unique(order_id, where="reject_reason is null"), not_null(order_date, where="reject_reason is null")
-- audits: accepted_values(status, 'completed', 'cancelled', 'returned', where="reject_reason is null")
-- description: Every source order, typed (timestamps as UTC), with the reason staging rejects it (null = kept). Built by order date: when order files are added, only the last days are checked again (every copy of their ids is still compared, so duplicates are found across all history); orders that arrive for older days make the row count differ from the source, and the model is then rebuilt in full.
-- pii: reject_reason none: a reason code, not a person
-- column order_date: Day of the order (UTC); null when order_ts is (those rows are checked every run).
-- column reject_reason: null_order_id | duplicate_order_id | null_order_ts | future_order_ts (after the day the model is built) | unknown_status.
with arrived as (
    select * from source.orders
    where not $incremental or cast(order_ts as date) >= $start_date or order_ts is null
),
copies as (
    -- a full build reads everything once; an incremental one also reads every earlier copy
    -- of the ids that arrived, so the first copy is the same as in a full build
    select * from arrived where not $incremental
    union all
    select * from source.orders
    where $incremental
        and cast(order_id as varchar) in (select cast(order_id as varchar) from arrived)
    union all
    select * from arrived where $incremental and order_id is null
),
numbered as (
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
    from copies
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
