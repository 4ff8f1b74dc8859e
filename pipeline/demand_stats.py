"""Per-product demand shape: intermittency statistics that SQL expresses poorly."""

from __future__ import annotations

import polars as pl

from warehouse.python_model import model

# Syntetos-Boylan thresholds separating smooth, erratic, intermittent and lumpy demand
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49


@model(
    "features.product_demand_stats",
    inputs=["features.demand"],
    grain=["product_id"],
    audits="not_null(demand_class), accepted_values(demand_class, smooth, erratic, "
    "intermittent, lumpy)",
    # per product: on Spark the function runs on the workers, one product at a time
    partition_by="product_id",
    columns={
        "adi": "Average demand interval: periods per period with demand.",
        "cv2": "Squared coefficient of variation of the non-zero demand sizes.",
    },
)
def product_demand_stats(demand: pl.LazyFrame) -> pl.LazyFrame:
    """Average demand interval (ADI), CV² of non-zero demand and the demand class."""
    nonzero = pl.col("units").filter(pl.col("units") > 0)
    stats = demand.group_by("product_id").agg(
        periods=pl.len(),
        periods_with_demand=(pl.col("units") > 0).sum(),
        mean_units=pl.col("units").mean(),
        mean_nonzero=nonzero.mean(),
        std_nonzero=nonzero.std(),
        first_period=pl.col("period").min(),
        last_period=pl.col("period").max(),
    )
    adi = pl.col("periods") / pl.col("periods_with_demand")
    cv2 = (pl.col("std_nonzero") / pl.col("mean_nonzero")) ** 2
    return (
        stats.with_columns(adi=adi, cv2=cv2.fill_null(0.0))
        .with_columns(
            demand_class=pl.when(pl.col("periods_with_demand") == 0)
            .then(pl.lit("lumpy"))
            .when((pl.col("adi") < ADI_CUTOFF) & (pl.col("cv2") < CV2_CUTOFF))
            .then(pl.lit("smooth"))
            .when(pl.col("adi") < ADI_CUTOFF)
            .then(pl.lit("erratic"))
            .when(pl.col("cv2") < CV2_CUTOFF)
            .then(pl.lit("intermittent"))
            .otherwise(pl.lit("lumpy"))
        )
        .sort("product_id")
    )
