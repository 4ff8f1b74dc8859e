-- kind: incremental_by_time
-- time_column: forecast_date
-- lookback: 3
-- grain: run_id, product_id, forecast_date
-- assert: abs_error >= 0
-- assert: horizon >= 1
-- description: Every published forecast (forecast.demand_forecast_history) scored against the actuals of features.demand as they arrive: one row per run, product and forecast period that has been observed. Sums aggregate: WAPE = sum(abs_error) / sum(units_actual), MASE = sum(abs_error) / sum(mase_scale), bias = sum(error) / sum(units_actual), coverage = avg(in_interval), forecast value added = 1 - sum(abs_error) / sum(naive_abs_error); marts.forecast_accuracy_by_horizon does it per run, horizon step and demand class. Incremental: a new day of actuals scores that day for every run that forecast it.
-- column horizon: Periods after the run's cutoff: 1 = the first forecast period.
-- column demand_class: The product's Syntetos-Boylan class (smooth, erratic, intermittent, lumpy) on its demand up to the run's cutoff: what the run knew.
-- column units_forecast: The point forecast the run published.
-- column error: units_forecast - units_actual (positive: over-forecast).
-- column naive_forecast: The seasonal naive forecast from the same cutoff: the last observed period of the same season (7 days, 52 weeks, 12 months); null when the product has no such period.
-- column naive_abs_error: |naive_forecast - units_actual|.
-- column mase_scale: The product's mean absolute one-period change in demand up to the cutoff (MASE's denominator).
-- column wape: abs_error / units_actual; null when nothing sold.
-- column mase: abs_error / mase_scale; null for a constant history.
-- column in_interval: units_actual lies within [units_p10, units_p90].
-- column value_added: naive_abs_error - abs_error: units of error the forecast saved against seasonal naive (negative: naive was closer).
with forecasts as (
    select
        run_id,
        model,
        product_id,
        cutoff_date,
        forecast_date,
        cast(date_diff($freq, cutoff_date, forecast_date) as integer) as horizon,
        units_forecast,
        units_p10,
        units_p90
    from forecast.demand_forecast_history
    where forecast_date between $start_date and $end_date
),
changes as (
    select
        product_id,
        period,
        units,
        row_number() over (partition by product_id order by period) as idx,
        abs(units - lag(units) over (partition by product_id order by period)) as change
    from features.demand
    -- only the products forecast for the window's dates: no forecasts, (almost) no work
    where product_id in (select product_id from forecasts)
),
history as (
    -- running statistics up to and including each period: read at a run's cutoff, they are
    -- what the run knew (MASE's scale, the demand class)
    select
        product_id,
        period,
        units,
        idx,
        sum(change) over upto as total_change,
        count(change) over upto as changes,
        count(*) over upto as periods,
        sum(case when units > 0 then 1 else 0 end) over upto as periods_with_demand,
        sum(case when units > 0 then cast(units as double) end) over upto as nonzero_sum,
        sum(case when units > 0 then cast(units as double) * units end) over upto as nonzero_sq
    from changes
    window upto as (
        partition by product_id order by period rows between unbounded preceding and current row
    )
),
shape as (
    select
        product_id,
        period,
        total_change / nullif(changes, 0) as mase_scale,
        cast(periods as double) / nullif(periods_with_demand, 0) as adi,
        -- CV² of the non-zero sizes from running sums (sample variance, as Polars' std)
        coalesce(
            (nonzero_sq - nonzero_sum * nonzero_sum / periods_with_demand)
            / nullif(periods_with_demand - 1, 0)
            / nullif((nonzero_sum / periods_with_demand) * (nonzero_sum / periods_with_demand), 0),
            0
        ) as cv2,
        periods_with_demand
    from history
),
scored as (
    select
        f.run_id,
        f.model,
        a.product_id,
        f.cutoff_date,
        f.forecast_date,
        f.horizon,
        -- the thresholds of pipeline/demand_stats.py (ADI 1.32, CV² 0.49)
        case
            when s.periods_with_demand is null or s.periods_with_demand = 0 then 'lumpy'
            when s.adi < 1.32 and s.cv2 < 0.49 then 'smooth'
            when s.adi < 1.32 then 'erratic'
            when s.cv2 < 0.49 then 'intermittent'
            else 'lumpy'
        end as demand_class,
        cast(a.units as double) as units_actual,
        cast(f.units_forecast as double) as units_forecast,
        cast(f.units_p10 as double) as units_p10,
        cast(f.units_p90 as double) as units_p90,
        cast(n.units as double) as naive_forecast,
        cast(s.mase_scale as double) as mase_scale
    from forecasts as f
    join history as a on a.product_id = f.product_id and a.period = f.forecast_date
    left join shape as s on s.product_id = f.product_id and s.period = f.cutoff_date
    -- seasonal naive from the cutoff: the same season's period in the last observed season
    left join history as n
        on n.product_id = f.product_id
        and n.idx = a.idx - cast(
            ceil(f.horizon / (case $freq when 'day' then 7 when 'week' then 52 else 12 end))
            * (case $freq when 'day' then 7 when 'week' then 52 else 12 end) as bigint
        )
    where f.horizon >= 1
)
select
    cast(run_id as varchar) as run_id,
    cast(model as varchar) as model,
    product_id,
    cast(cutoff_date as date) as cutoff_date,
    cast(forecast_date as date) as forecast_date,
    horizon,
    demand_class,
    units_actual,
    units_forecast,
    units_p10,
    units_p90,
    units_forecast - units_actual as error,
    abs(units_forecast - units_actual) as abs_error,
    naive_forecast,
    abs(naive_forecast - units_actual) as naive_abs_error,
    mase_scale,
    abs(units_forecast - units_actual) / nullif(units_actual, 0) as wape,
    abs(units_forecast - units_actual) / nullif(mase_scale, 0) as mase,
    units_actual between units_p10 and units_p90 as in_interval,
    abs(naive_forecast - units_actual) - abs(units_forecast - units_actual) as value_added
from scored
