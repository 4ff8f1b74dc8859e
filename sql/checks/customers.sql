-- kind: full
-- description: Every source customer row, typed, with the reason staging rejects it (null = kept).
-- pii: reject_reason none: a reason code, not a person
-- column reject_reason: null_customer_id | duplicate_customer_id (the first row of an id is kept).
with numbered as (
    select
        cast(customer_id as varchar) as customer_id,
        cast(signup_date as date) as signup_date,
        country,
        channel,
        segment,
        row_number() over (
            partition by cast(customer_id as varchar) order by signup_date, country, channel, segment
        ) as copy_number
    from source.customers
)
select
    customer_id,
    signup_date,
    country,
    channel,
    segment,
    case
        when customer_id is null then 'null_customer_id'
        when copy_number > 1 then 'duplicate_customer_id'
    end as reject_reason
from numbered
