-- kind: view
-- description: Promotion windows per product (planned, so known ahead of time).
select product_id, start_date, end_date, discount_pct
from checks.promotions
where reject_reason is null
