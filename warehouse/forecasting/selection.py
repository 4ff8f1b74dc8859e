"""From the backtest to what is published: ensembles of the best candidates, a model chosen
per product (its own backtest error, shrunk toward the overall ranking), and intervals from
backtest residuals for models without quantile boosters.

Everything scored as wh's own forecast is out of sample: an ensemble's members and a
product's choice for fold f are taken from the other folds, so the backtest rows of
`ensemble_*` and `selected` are what those rules would have published at f's cutoff. (With
one fold there are no other folds: that fold chooses, in sample, so per-product choice is
never published from one fold; see selection_evidence.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from warehouse.forecasting.spec import COMBINATIONS, ENSEMBLES, ForecastSpec

SELECTED = "selected"
ENSEMBLE_SIZE = 3


def _loss(metric: str) -> pl.Expr:
    error = pl.col("units_forecast") - pl.col("units_actual")
    return error.pow(2) if metric == "rmse" else error.abs()


def ranking(predictions: pl.DataFrame, metric: str) -> pl.DataFrame:
    """model, score (summed loss over actual units: WAPE, or MSE-like for rmse), best first."""
    scored = predictions.group_by("model").agg(
        score=_loss(metric).sum() / pl.col("units_actual").abs().sum().clip(1e-9)
    )
    return scored.sort("score", "model")


def _members(predictions: pl.DataFrame, metric: str, name: str) -> list[str]:
    """A fixed combination's members that ran (two at least, else none); a selected
    ensemble's: the best ENSEMBLE_SIZE of `predictions`."""
    if name in COMBINATIONS:
        ran = set(predictions["model"].unique().to_list())
        members = [m for m in COMBINATIONS[name] if m in ran]
        return members if len(members) >= 2 else []
    return ranking(predictions, metric)["model"].head(ENSEMBLE_SIZE).to_list()


def _combine(predictions: pl.DataFrame, members: list[str], name: str) -> pl.DataFrame:
    how = (
        pl.col("units_forecast").mean()
        if name.endswith("mean")
        else pl.col("units_forecast").median()
    )
    keys = [
        c
        for c in ("fold", "cutoff_date", "product_id", "forecast_date", "horizon")
        if c in predictions.columns
    ]
    extra = [c for c in ("units_actual",) if c in predictions.columns]
    return (
        predictions.filter(pl.col("model").is_in(members))
        .group_by(keys)
        .agg(how.alias("units_forecast"), *(pl.col(c).first() for c in extra))
        .with_columns(model=pl.lit(name))
    )


def add_ensembles(
    predictions: pl.DataFrame, spec: ForecastSpec
) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """Backtest rows of each requested ensemble (members chosen on the other folds), and the
    members a refit uses (chosen on every fold)."""
    wanted = [m for m in spec.models if m in ENSEMBLES]
    if not wanted:
        return predictions, {}
    base = predictions.filter(~pl.col("model").is_in(list(ENSEMBLES)))
    folds = sorted(base["fold"].unique().to_list())
    frames = [predictions]
    final: dict[str, list[str]] = {}
    for name in wanted:
        if not _members(base, spec.metric, name):
            continue  # a combination whose members did not run: no candidate
        for fold in folds:
            others = base.filter(pl.col("fold") != fold) if len(folds) > 1 else base
            members = _members(others, spec.metric, name)
            frames.append(_combine(base.filter(pl.col("fold") == fold), members, name))
        final[name] = _members(base, spec.metric, name)
    return pl.concat(frames, how="diagonal_relaxed"), final


@dataclass(frozen=True)
class Selection:
    table: pl.DataFrame  # product_id, model, score, global_model, global_score, n


def select(
    predictions: pl.DataFrame, metric: str, shrinkage: float, best: str | None = None
) -> Selection:
    """Per product, the candidate with the lowest shrunk backtest loss.

    A product's mean loss under model m is shrunk toward a prior, the product's loss under
    the overall best model times m's overall relative loss, with `shrinkage` backtest
    periods of weight: a product with few backtest rows keeps the overall ranking, one with
    many follows its own evidence. `best`: the overall best model as the caller ranks it
    (the run's winner, by its metric's mean over folds); by default the pooled ranking's."""
    candidates = predictions.filter(pl.col("model") != SELECTED)
    ranked = ranking(candidates, metric)
    best = best or str(ranked["model"][0])
    best_score = ranked.filter(pl.col("model") == best)["score"]
    scale = float(best_score[0]) if best_score.len() else float(ranked["score"].min())  # type: ignore[arg-type]
    relative = ranked.with_columns(rel=pl.col("score") / max(scale, 1e-12))
    per = candidates.group_by("product_id", "model").agg(loss=_loss(metric).mean(), n=pl.len())
    prior = per.filter(pl.col("model") == best).select("product_id", prior_loss="loss")
    scored = (
        per.join(relative.select("model", "rel"), on="model")
        .join(prior, on="product_id", how="left")
        .with_columns(
            score=(
                pl.col("n") * pl.col("loss")
                + shrinkage * pl.col("rel") * pl.col("prior_loss").fill_null(pl.col("loss"))
            )
            / (pl.col("n") + shrinkage)
        )
    )
    chosen = (
        scored.sort("product_id", "score", "model")
        .group_by("product_id", maintain_order=True)
        .first()
    )
    global_scores = scored.filter(pl.col("model") == best).select(
        "product_id", global_score="score"
    )
    table = (
        chosen.join(global_scores, on="product_id", how="left")
        .select(
            pl.col("product_id"),
            pl.col("model"),
            pl.col("score"),
            pl.lit(best).alias("global_model"),
            pl.col("global_score"),
            pl.col("n").cast(pl.Int64),
        )
        .sort("product_id")
    )
    return Selection(table)


def selected_backtest(predictions: pl.DataFrame, metric: str, shrinkage: float) -> pl.DataFrame:
    """The backtest rows per-product selection would have published: for each fold, the
    model chosen on the other folds."""
    folds = sorted(predictions["fold"].unique().to_list())
    frames = []
    for fold in folds:
        others = predictions.filter(pl.col("fold") != fold) if len(folds) > 1 else predictions
        choice = select(others, metric, shrinkage).table.select("product_id", "model")
        this = predictions.filter(pl.col("fold") == fold)
        frames.append(
            this.join(choice, on=["product_id", "model"], how="inner").with_columns(
                model=pl.lit(SELECTED)
            )
        )
    return pl.concat(frames, how="diagonal_relaxed")


def selection_evidence(predictions: pl.DataFrame, winner: str, metric: str) -> float:
    """How many standard errors per-product selection's loss lies below the winner's, over
    paired (product, fold) losses of the out-of-sample `selected` rows: choosing per product
    adds variance, so it is published only on evidence (>= 1), not on a backtest tie. One
    fold gives no out-of-sample evidence: 0."""
    if predictions["fold"].n_unique() < 2:
        return 0.0
    paired = (
        predictions.filter(pl.col("model").is_in([winner, SELECTED]))
        .group_by("product_id", "fold", "model")
        .agg(loss=_loss(metric).sum())
        .pivot(on="model", index=["product_id", "fold"], values="loss")
        .drop_nulls()
    )
    if SELECTED not in paired.columns or winner not in paired.columns or paired.height < 2:
        return 0.0
    gain = (paired[winner] - paired[SELECTED]).to_numpy()
    spread = float(np.std(gain, ddof=1))
    if spread == 0:
        return float("inf") if gain.mean() > 0 else 0.0
    return float(gain.mean() / (spread / np.sqrt(len(gain))))


def residual_quantiles(
    predictions: pl.DataFrame, scales: pl.DataFrame, quantiles: tuple[float, float, float]
) -> pl.DataFrame:
    """model, horizon, q_low, q_mid, q_high: quantiles of scaled backtest errors
    (actual - forecast) / product scale, per model and step."""
    low, mid, high = quantiles
    return (
        predictions.join(scales, on=["fold", "product_id"], how="left")
        .with_columns(
            r=(pl.col("units_actual") - pl.col("units_forecast"))
            / pl.col("scale").fill_null(1.0).clip(1e-9)
        )
        .group_by("model", "horizon")
        .agg(
            q_low=pl.col("r").quantile(low, "linear"),
            q_mid=pl.col("r").quantile(mid, "linear"),
            q_high=pl.col("r").quantile(high, "linear"),
        )
    )


def conformal(point: np.ndarray, scale: np.ndarray, q: np.ndarray) -> np.ndarray:
    """rows x 3 quantiles: point + scale * residual quantile, non-negative and monotone."""
    out = point[:, None] + scale[:, None] * q
    out[:, 1] = point  # the published point stays the model's
    return np.maximum.accumulate(np.clip(out, 0, None), axis=1)
