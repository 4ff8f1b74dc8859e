"""Spark adapter: the session, views over version and source files, writing Parquet in wh's
layout, and reading back what was written. The SQL it runs is already Spark's
(runtime/engine/spark_sql.py translates); nothing here knows about models.

pyspark is imported when a Spark build starts, never by `import warehouse`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.config import EngineSettings
from warehouse.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# what a session gets unless [engine.conf] says otherwise
DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # dates of timestamps with time zones are UTC dates, as in DuckDB's connections
    "spark.sql.session.timeZone": "UTC",
    # DuckDB reads INT96 as a timestamp with time zone; micros keep naive timestamps naive
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
    # a version folder holds Parquet files only
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.sql.parquet.summary.metadata.level": "NONE",
    "spark.log.structuredLogging.enabled": "false",
}


def view_name(schema: str, table: str) -> str:
    """The temporary view standing for `schema.table` (`this` has no schema)."""
    return f"wh__{schema}__{table}" if schema else f"wh__{table}"


class SparkError(Exception):
    """What Spark raised, with its first line (Spark's messages run to pages)."""


def error_types() -> tuple[type[BaseException], ...]:
    from pyspark.errors import PySparkException

    try:
        from py4j.protocol import Py4JError
    except ImportError:  # Spark Connect has no JVM in this process
        return (PySparkException,)
    return (PySparkException, Py4JError)


PYTHON_ERROR = re.compile(r"^\w+(?:\.\w+)*(?:Error|Exception|Exit)\b.*$", re.MULTILINE)


def short_message(exc: BaseException) -> str:
    """Spark's first line; for an error in a Python worker, the exception it ended with."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if "Python worker" in first:
        raised = PYTHON_ERROR.findall(text)
        if raised:
            return f"in a Python worker: {raised[-1]}"
    return re.sub(r"\s*SQLSTATE: \w+\.?", "", first)


def session(options: EngineSettings, threads: int) -> SparkSession:
    """The process's Spark session: a master URL (local[N], spark://, yarn, k8s://) or a Spark
    Connect endpoint (sc://)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "[engine] name = 'spark' needs pyspark",
            hint="install it (`uv sync --group scale`, or pip install pyspark) and a Java 17+ "
            "runtime, or set [engine] name = 'duckdb'",
        ) from None
    if options.remote:
        _reachable(options.remote)
    builder: Any = SparkSession.builder.appName(options.app_name)
    submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT"))  # started by spark-submit
    if options.remote:
        builder = builder.remote(options.remote)
    else:
        # under spark-submit, its --master stands unless wh.toml names one
        master = options.master or ("" if submitted else f"local[{threads}]")
        if master:
            builder = builder.master(master)
        conf = dict(DEFAULT_CONF)
        if master.startswith("local"):  # a cluster keeps Spark's own (adaptive) partitioning
            conf["spark.sql.shuffle.partitions"] = str(max(2, 2 * threads))
        if master.startswith("local") and not submitted:
            # Python workers on this machine run this interpreter (Polars, PyArrow); PySpark
            # reads the variable when the context starts (the conf is spark-submit's)
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in {**conf, **options.conf}.items():
            builder = builder.config(key, value)
    try:
        spark: SparkSession = builder.getOrCreate()
    except Exception as exc:  # no Java, a bad master URL, an unreachable endpoint
        where = options.remote or options.master or f"local[{threads}]"
        raise ConfigError(
            f"could not start Spark ({where}): {short_message(exc)}",
            hint="check [engine] master/remote in wh.toml and that Java 17+ is installed "
            "(java -version)",
        ) from None
    if not options.remote:
        spark.sparkContext.setLogLevel("FATAL")  # errors reach wh as exceptions
        for key, value in {**DEFAULT_CONF, **options.conf}.items():
            if key.startswith("spark.sql."):
                spark.conf.set(key, value)  # a session started before keeps its own
    return spark


def _reachable(remote: str, timeout: float = 10.0) -> None:
    """Fail fast on an endpoint nobody listens on: the Connect client retries for minutes."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(remote.replace("sc://", "http://", 1))
    host, port = parsed.hostname or "localhost", parsed.port or 15002
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Spark Connect endpoint {host}:{port} ({exc})",
            hint="start the server (sbin/start-connect-server.sh) or fix [engine] remote / "
            "WH_SPARK_REMOTE",
        ) from None


def _uri(path: str | Path) -> str:
    """What Spark is given: a remote URI as it is, a local file as its absolute path (Hadoop
    does not decode a file: URI's escapes, e.g. %3D for the = of wh_month=...)."""
    text = str(path)
    return text if "://" in text else str(Path(text).resolve())


def local_path(uri: str) -> str:
    """A file name as wh records it: a local path, or the URI of a remote store."""
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


class Spark:
    """One Spark session as a build uses it."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.errors = error_types()

    def read(self, files: Sequence[str | Path], merge_schema: bool = False) -> DataFrame:
        """The rows of these Parquet files; folder names like wh_month=... are not columns."""
        reader = self.spark.read.option("recursiveFileLookup", "true")
        if merge_schema:  # like DuckDB's union_by_name over a source's files
            reader = reader.option("mergeSchema", "true")
        return reader.parquet(*[_uri(f) for f in files])

    def view(self, name: str, frame: DataFrame) -> None:
        frame.createOrReplaceTempView(name)

    def view_over_files(
        self, name: str, files: Sequence[str | Path], merge_schema: bool = False
    ) -> None:
        self.view(name, self.read(files, merge_schema))

    def sql(self, text: str) -> DataFrame:
        return self.spark.sql(text)

    def first_row(self, text: str) -> tuple[Any, ...] | None:
        rows = self.spark.sql(text).collect()
        return tuple(rows[0]) if rows else None

    def write(self, frame: DataFrame, folder: Path, partition: str | None = None) -> list[str]:
        """Write a frame's rows as Parquet files under `folder` (one subfolder per value of
        `partition`, which is not stored in the files); returns the files written."""
        writer = frame.write.mode("error")  # an existing folder is a bug: fail
        if partition:
            writer = writer.partitionBy(partition)
        target = _uri(folder)
        writer.parquet(target)
        if "://" in str(folder):
            return sorted(self.spark.read.parquet(target).inputFiles())
        for crc in Path(folder).rglob(".*.crc"):  # Hadoop's local file system's checksums
            crc.unlink(missing_ok=True)
        return sorted(str(p) for p in Path(folder).rglob("*.parquet"))

    def file_stats(
        self, files: Sequence[str], column: str | None
    ) -> dict[str, tuple[int, Any, Any]]:
        """Rows and (with a column) its min and max, per file."""
        from pyspark.sql import functions as F

        frame = self.read(files).withColumn("wh_file", F.input_file_name())
        aggregates = [F.count(F.lit(1))]
        if column:
            aggregates += [F.min(F.col(f"`{column}`")), F.max(F.col(f"`{column}`"))]
        found = {
            local_path(row[0]): (int(row[1]), *(row[2:] if column else (None, None)))
            for row in frame.groupBy("wh_file").agg(*aggregates).collect()
        }
        return {f: found.get(f, (0, None, None)) for f in files}
