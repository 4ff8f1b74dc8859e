"""features.demand_features: one row per product and period with what is known before it.

Written as SQL generated per `freq`, because the lag and window sets differ by frequency:

| freq  | lags (periods)            | rolling windows (periods) |
|-------|---------------------------|---------------------------|
| day   | 1-7, 14, 28               | 7, 14, 28                 |
| week  | 1-4, 8, 13, 26, 52        | 4, 8, 13                  |
| month | 1-3, 6, 12                | 3, 6, 12                  |

Every lag and window ends at t-1, so a row for period t uses only demand before t. Known
ahead of time, and so taken at t: the calendar, planned promotions (at t and t+1) and the
promotion's price ratio. Incremental: a window of periods is computed from the history it
needs (the longest lag or window), so the result equals a full rebuild.
"""

from __future__ import annotations

from typing import Any

from warehouse.python_model import sql_model

LAGS = {
    "day": [1, 2, 3, 4, 5, 6, 7, 14, 28],
    "week": [1, 2, 3, 4, 8, 13, 26, 52],
    "month": [1, 2, 3, 6, 12],
}
WINDOWS = {"day": [7, 14, 28], "week": [4, 8, 13], "month": [3, 6, 12]}
CALENDAR = {
    "day": [
        "isodow(l.period) as day_of_week",
        "dayofmonth(l.period) as day_of_month",
        "weekofyear(l.period) as week_of_year",
        "month(l.period) as month",
        "quarter(l.period) as quarter",
        "isodow(l.period) >= 6 as is_weekend",
    ],
    "week": [
        "weekofyear(l.period) as week_of_year",
        "month(l.period) as month",
        "quarter(l.period) as quarter",
    ],
    "month": ["month(l.period) as month", "quarter(l.period) as quarter"],
}


def history(freq: str) -> int:
    """Periods before t that any feature of t reads."""
    return max(LAGS[freq] + WINDOWS[freq])


@sql_model(
    "features.demand_features",
    kind="incremental_by_time",
    time_column="period",
    lookback=3,
    grain=["product_id", "period"],
    audits="row_count(min=1), not_null(units, periods_since_launch)",
    columns={
        "units": "The target: units in the period (not a feature).",
        "units_lag_1": "Units one period before t (units_lag_k: k periods before).",
        "units_mean_7": "Mean units over the 7 periods before t (also _std_, _min_, _max_).",
        "periods_since_last_sale": "Periods since the last period with units, looking back "
        "at most the history window; null if none in it.",
        "last_price_ratio": "Last paid average price before t / base price.",
        "last_list_price_ratio": "Last list price (before promotion discounts) before t / "
        "base price: the regular price a forecast assumes holds.",
        "promo_price_ratio": "1 - planned promotion discount at t.",
        "promo_next_period": "A promotion is planned for t+1.",
    },
)
def demand_features(variables: dict[str, Any]) -> str:
    freq = variables["freq"]
    span = history(freq)
    lags = ",\n        ".join(f"lag(d.units, {k}) over w as units_lag_{k}" for k in LAGS[freq])
    rolling = ",\n        ".join(
        f"{fn}(d.units) over (w rows between {n} preceding and 1 preceding) as units_{name}_{n}"
        for n in WINDOWS[freq]
        for fn, name in (("avg", "mean"), ("stddev_samp", "std"), ("min", "min"), ("max", "max"))
    )
    calendar = ",\n    ".join(CALENDAR[freq])
    return f"""
with demand as (
    select product_id, period, units, avg_price, avg_discount, on_promo, promo_discount_pct
    from features.demand
    where period >= $start_date - interval {span} {freq}
),
lagged as (
    select
        d.product_id,
        d.period,
        d.units,
        {lags},
        {rolling},
        max(case when d.units > 0 then d.period end)
            over (w rows between {span} preceding and 1 preceding) as last_sale_period,
        last_value(d.avg_price ignore nulls)
            over (w rows between {span} preceding and 1 preceding) as last_price,
        -- the list price before discounts (a day's lines share one; a week or month blends
        -- its list prices by units)
        last_value(d.avg_price / nullif(1 - d.avg_discount, 0) ignore nulls)
            over (w rows between {span} preceding and 1 preceding) as last_list_price,
        d.on_promo,
        d.promo_discount_pct
    from demand as d
    window w as (partition by d.product_id order by d.period)
),
first_sale as (
    select product_id, min(period) as first_period from features.demand group by product_id
),
next_promo as (
    select distinct pr.product_id, l.period
    from lagged as l
    join staging.promotions as pr
        on pr.product_id = l.product_id
        and pr.start_date < l.period + interval 2 {freq}
        and pr.end_date >= l.period + interval 1 {freq}
)
select
    l.* exclude (last_sale_period, last_price, last_list_price),
    {calendar},
    1 - l.promo_discount_pct / 100 as promo_price_ratio,
    n.product_id is not null as promo_next_period,
    l.last_price / nullif(p.base_price, 0) as last_price_ratio,
    l.last_list_price / nullif(p.base_price, 0) as last_list_price_ratio,
    coalesce(p.department, 'unknown') as department,
    coalesce(p.category, 'unknown') as category,
    p.base_price,
    datediff('{freq}', coalesce(p.launch_date, f.first_period), l.period)
        as periods_since_launch,
    datediff('{freq}', l.last_sale_period, l.period) as periods_since_last_sale
from lagged as l
left join next_promo as n on n.product_id = l.product_id and n.period = l.period
left join staging.products as p on p.product_id = l.product_id
left join first_sale as f on f.product_id = l.product_id
"""
