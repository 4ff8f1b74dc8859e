-- kind: view
-- grain: run_id, horizon, demand_class
-- description: marts.forecast_accuracy summed per run, horizon step and demand class (and 'all' classes): how each published run has done so far, step by step. Ratios of sums, so a product that sells more weighs more.
-- column products: Products scored at this step.
-- column wape: sum(abs_error) / sum(units_actual).
-- column mase: sum(abs_error) / sum(mase_scale).
-- column bias: sum(error) / sum(units_actual): positive = over-forecast.
-- column coverage: Share of actuals within p10-p90 (0.8 when the intervals are calibrated).
-- column naive_wape: Seasonal naive's WAPE on the same rows (those with a naive forecast).
-- column value_added: Forecast value added: 1 - sum(abs_error) / sum(naive_abs_error) over the rows with a naive forecast; positive = better than seasonal naive.
select
    run_id,
    min(cutoff_date) as cutoff_date,
    horizon,
    coalesce(demand_class, 'all') as demand_class,
    count(*) as products,
    sum(units_actual) as units_actual,
    sum(abs_error) / nullif(sum(units_actual), 0) as wape,
    sum(abs_error) / nullif(sum(mase_scale), 0) as mase,
    sum(error) / nullif(sum(units_actual), 0) as bias,
    avg(case when in_interval then 1.0 else 0.0 end) as coverage,
    sum(naive_abs_error) / nullif(sum(case when naive_abs_error is not null then units_actual end), 0)
        as naive_wape,
    1 - sum(case when naive_abs_error is not null then abs_error end)
        / nullif(sum(naive_abs_error), 0) as value_added
from marts.forecast_accuracy
group by grouping sets ((run_id, horizon, demand_class), (run_id, horizon))
