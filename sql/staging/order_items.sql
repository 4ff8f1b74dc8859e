-- kind: view
-- audits: row_count(min=1)
-- description: Clean order lines: exact duplicates, bad quantities or prices and lines without a (clean) order are in staging.rejects. (checks.order_items audits the kept rows: no nulls, quantity > 0, discount between 0 and 1.)
-- column order_date: Day of the line's order (UTC).
-- column discount: Fraction off unit_price, 0 when missing.
-- column unknown_product: The product is not in staging.products; the line still counts as demand.
select order_id, product_id, quantity, unit_price, discount, order_date, unknown_product
from checks.order_items
where reject_reason is null
