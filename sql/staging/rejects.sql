-- kind: full
-- description: Every source row cleaning rejected: its source, the reason and the typed row as JSON. Raw rows = staged rows + rejected rows, per source.
-- pii: reason none: a reason code, not a person
-- pii: row direct: the rejected row as JSON holds customer ids, countries, signup dates
-- column row: The rejected row, typed, as JSON.
select 'customers' as source, reject_reason as reason,
    json_remove(to_json(c), '$.reject_reason') as row
from checks.customers as c where reject_reason is not null
union all
select 'products', reject_reason, json_remove(to_json(p), '$.reject_reason')
from checks.products as p where reject_reason is not null
union all
select 'orders', reject_reason, json_remove(to_json(o), '$.reject_reason')
from checks.orders as o where reject_reason is not null
union all
select 'order_items', reject_reason,
    json_remove(json_remove(json_remove(to_json(i), '$.reject_reason'), '$.unknown_product'),
        '$.order_date')
from checks.order_items as i where reject_reason is not null
union all
select 'promotions', reject_reason, json_remove(to_json(pr), '$.reject_reason')
from checks.promotions as pr where reject_reason is not null
