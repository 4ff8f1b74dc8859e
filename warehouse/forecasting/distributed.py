"""The global LightGBM trained on a Dask cluster (`[forecast] cluster`), with lightgbm.dask.

`local:N` starts a LocalCluster of N single-threaded worker processes for the run;
`dask://host:8786` (or `tcp://`) joins a running scheduler. The training rows are built on
this machine (as without a cluster), split into one partition per worker and trained on in
LightGBM's data-parallel mode; the fitted booster comes back and predicts here.

lightgbm.dask has no early stopping: every round is trained, each evaluated on the
validation rows by the workers, and the booster is cut where single-machine early stopping
would have stopped (the same patience on the same curve).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from warehouse.errors import ConfigError

CLUSTER = re.compile(r"^(local:(?P<workers>[1-9][0-9]*)|(?P<scheme>dask|tcp)://(?P<address>.+))$")

_clients: dict[str, Any] = {}  # cluster setting -> Client, for the length of a forecast run
_fits: dict[str, list[int]] = {}  # cluster setting -> workers of each fit trained on it
_statistical: dict[str, int] = {}  # cluster setting -> statsforecast calls run on it


def check(setting: str) -> None:
    if setting and not CLUSTER.match(setting):
        raise ConfigError(
            f"[forecast] cluster must be local:N or dask://host:port, found '{setting}'",
            hint="local:2 starts two Dask workers here; dask://scheduler:8786 joins a cluster",
        )


def client(setting: str) -> Any:
    """The Dask client for the setting (started once per run; `close_all` ends it)."""
    if setting in _clients:
        return _clients[setting]
    found = CLUSTER.match(setting)
    if found is None:
        check(setting)
        raise AssertionError(setting)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "[forecast] cluster needs dask and distributed",
            hint="install them (`uv sync --group scale`, or pip install 'dask[distributed]' "
            "scikit-learn), or remove [forecast] cluster",
        ) from None
    if found["workers"]:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=int(found["workers"]),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        made = Client(cluster)  # type: ignore[no-untyped-call]
    else:
        try:
            made = Client(f"tcp://{found['address']}", timeout="30s")  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise ConfigError(
                f"could not reach the Dask scheduler at {found['address']}: {exc}",
                hint="start it (dask scheduler) or fix [forecast] cluster in wh.toml",
            ) from None
    _clients[setting] = made
    return made


def workers(setting: str) -> int:
    """Workers of the cluster (started if it is not yet): statsforecast's Fugue backend
    finds this client as Dask's default."""
    return max(1, len(client(setting).scheduler_info()["workers"]))


def ran_statistical(setting: str) -> None:
    _statistical[setting] = _statistical.get(setting, 0) + 1


def summary(setting: str) -> str | None:
    """What ran on the cluster since it started, for the run's notes."""
    fits, calls = _fits.get(setting), _statistical.get(setting, 0)
    done = []
    if fits:
        done.append(
            f"LightGBM trained on Dask ({setting}): {len(fits)} fits on {max(fits)} workers"
        )
    if calls:
        done.append(f"statsforecast on Dask ({setting}): {calls} runs over the series")
    return "; ".join(done) or None


def close_all() -> None:
    for setting, made in list(_clients.items()):
        cluster = made.cluster
        made.close()
        if cluster is not None and setting.startswith("local:"):
            cluster.close()
        del _clients[setting]
        _fits.pop(setting, None)
        _statistical.pop(setting, None)


def _partitioned(made: Any, values: Any, parts: int) -> Any:
    """A Dask array of `parts` row blocks, each sent to the workers once (not embedded in
    the task graph, which the scheduler would then carry)."""
    import dask.array as da

    rows = max(1, math.ceil(len(values) / parts))
    pieces = [values[i : i + rows] for i in range(0, len(values), rows)] or [values]
    # block i on the i-th worker by address: the same rows meet the same LightGBM rank in
    # every run (scatter's round robin follows the order workers happened to join)
    addresses = sorted(made.scheduler_info()["workers"])
    futures = [
        made.scatter(piece, workers=[addresses[i % len(addresses)]])
        for i, piece in enumerate(pieces)
    ]
    blocks = [
        da.from_delayed(future, shape=piece.shape, dtype=piece.dtype)  # type: ignore[no-untyped-call]
        for future, piece in zip(futures, pieces, strict=True)
    ]
    return da.concatenate(blocks)  # type: ignore[no-untyped-call]


def stopped_at(curve: list[float], patience: int | None) -> int:
    """The round single-machine early stopping keeps: the best score before `patience`
    rounds without improvement (lower is better), counted from 1."""
    best, best_round = math.inf, 0
    for i, value in enumerate(curve):
        if value < best:
            best, best_round = value, i
        elif patience and i - best_round >= patience:
            break
    return best_round + 1


def train(
    setting: str,
    params: dict[str, Any],
    train_set: Any,
    valid_set: Any,
    rounds: int,
    stop: int | None,
) -> Any:
    """A LightGBM booster trained on the cluster, like `lgb.train` on these Datasets."""
    import lightgbm as lgb
    from lightgbm.dask import DaskLGBMRegressor

    # lightgbm.dask prints ports, ranks and "n_jobs will be ignored" (it sets threads per
    # worker itself) on every fit: kept to its errors
    quiet = logging.getLogger("warehouse.lightgbm_dask")
    quiet.setLevel(logging.ERROR)
    lgb.register_logger(quiet)
    made = client(setting)
    count = workers(setting)
    names = list(train_set.feature_name) if train_set.feature_name != "auto" else None
    categorical = train_set.categorical_feature
    # threads are the workers' own (lightgbm.dask sets them from the worker)
    settings = {k: v for k, v in params.items() if k not in ("num_threads", "verbosity")}
    model = DaskLGBMRegressor(client=made, n_estimators=rounds, verbosity=-1, **settings)
    extra: dict[str, Any] = {}
    if valid_set is not None and stop:
        extra["eval_X"] = (_partitioned(made, valid_set.data, count),)
        extra["eval_y"] = (_partitioned(made, valid_set.label, count),)
    model.fit(
        _partitioned(made, train_set.data, count),
        _partitioned(made, train_set.label, count),
        feature_name=names or "auto",
        categorical_feature=categorical if categorical != "auto" else "auto",
        **extra,
    )
    booster = model.booster_
    _fits.setdefault(setting, []).append(count)
    if extra:
        curve = next(iter(next(iter(model.evals_result_.values())).values()))
        booster.best_iteration = stopped_at(list(curve), stop)
    return booster
