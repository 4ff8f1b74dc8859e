-- kind: view
-- grain: product_id
-- assert: base_price is null or base_price >= 0
-- description: Product catalogue, typed; duplicate ids and negative prices are in staging.rejects.
-- column base_price: Null when unknown (price ratios are then null).
-- column launch_date: Null when unknown: demand then starts at the first sale.
-- column department: 'unknown' when missing (so is category).
select product_id, sku, name, department, category, base_price, launch_date, discontinued_date
from checks.products
where reject_reason is null
