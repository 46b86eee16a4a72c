"""How the platform starts Spark: the master is configuration, the rest are our defaults.

`FRAUD_SPARK_MASTER` (or the Dagster resource's config, or `fraud features --spark-master`) names
the cluster: `local[2]`, `spark://host:7077` for a standalone cluster, `yarn`, `k8s://…`; a
`sc://host:15002` URL is Spark Connect. The driver only plans and commits: executors read the
raw files and the lake and write the lake's files, so the driver needs little memory
(`FRAUD_SPARK_DRIVER_MEMORY`, default 1g) and `spark.driver.maxResultSize` keeps Spark's limit.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_master(master: str | None = None) -> str:
    """`master`, else FRAUD_SPARK_MASTER (fraud_assets/settings.py), else local[2]."""
    from fraud_assets.settings import platform_settings

    return master or platform_settings().spark_master


def spark_config(master: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The session settings the engines rely on, plus `extra` (which wins)."""
    # PySpark starts executors' Python workers with PYSPARK_PYTHON (default `python3`, which
    # lacks our packages): our interpreter, unless the deployment names another.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    config = {
        "spark.master": spark_master(master),
        "spark.app.name": "fraud-platform",
        # Naive timestamps are wall clock: the engines read them in UTC, whatever the host's zone.
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": _settings().spark_driver_memory,
        "spark.ui.showConsoleProgress": "false",
        # Few, larger shuffle partitions: adaptive execution splits them when they are big.
        "spark.sql.shuffle.partitions": "8",
        # Executors run the default engine's parser and window scan on Arrow batches this size.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "200000",
        # Executors import this package: the same interpreter (and virtual environment) as ours,
        # unless the deployment says otherwise.
        "spark.pyspark.python": os.environ.get("PYSPARK_PYTHON", sys.executable),
        # Executors' Python workers run one task each on one core: Polars (parser, window
        # scans, checks) on one thread there, not one per core of the machine for every task.
        "spark.executorEnv.POLARS_MAX_THREADS": "1",
        # Reads name the lake's committed files one by one (never a folder glob): up to this
        # many, the driver looks them up itself instead of starting a listing job per read.
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
        # A long-running driver (183 daily batches in one process) keeps the status of only
        # the recent jobs, stages and SQL queries (Spark keeps 1 000 of each by default, each
        # query with its plan's text): the driver's memory does not grow with the batches.
        "spark.ui.retainedJobs": "100",
        "spark.ui.retainedStages": "100",
        "spark.ui.retainedTasks": "10000",
        "spark.sql.ui.retainedExecutions": "50",
        "spark.ui.dagGraph.retainedRootRDDs": "100",
        # No cache of listed file statuses: our reads name the lake's files one by one, and the
        # cache keys every entry by the reading file index, so each read of the same files adds
        # new entries (up to 250 MB by default) that no later read uses.
        "spark.sql.hive.filesourcePartitionFileCacheSize": "0",
        # No `_SUCCESS` files in the staging folders (lake/spark_staging.py).
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    }
    config.update(s3a_config())
    if config["spark.master"].startswith("sc://"):
        config = _for_spark_connect(config)
    config.update(extra or {})
    return config


# Settings a Spark Connect client may set for its session; the rest (memory, UI retention, the
# executors' Python) are the Connect server's own configuration, which the client cannot change.
_CONNECT_SESSION_SETTINGS = (
    "spark.app.name",
    "spark.sql.session.timeZone",
    "spark.sql.shuffle.partitions",
    "spark.sql.execution.arrow.maxRecordsPerBatch",
    "spark.sql.sources.parallelPartitionDiscovery.threshold",
)


def _for_spark_connect(config: dict[str, str]) -> dict[str, str]:
    """`spark.remote` names a Connect server (PySpark then builds a remote session, also inside
    dagster-pyspark's resource); only session settings are sent."""
    remote = {"spark.remote": config["spark.master"]}
    return remote | {k: v for k, v in config.items() if k in _CONNECT_SESSION_SETTINGS}


def _settings():  # noqa: ANN202 - PlatformSettings
    from fraud_assets.settings import platform_settings

    return platform_settings()


def s3a_config() -> dict[str, str]:
    """The S3 endpoint settings the lake's fsspec uses, for Hadoop's s3a connector (which needs
    hadoop-aws on the cluster's class path). Credentials come from the environment's provider
    chain, never from this configuration."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return {}
    return {
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https")).lower(),
    }


def start_spark(master: str | None = None, extra: dict[str, str] | None = None) -> SparkSession:
    """A session with `spark_config`; Spark Connect for `sc://` masters."""
    from pyspark.sql import SparkSession

    config = spark_config(master, extra)
    remote = config.pop("spark.remote", None)
    builder = (
        SparkSession.builder.remote(remote)
        if remote
        else SparkSession.builder.master(config.pop("spark.master"))
    )
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if not remote:
        session.sparkContext.setLogLevel("WARN")
    return session


def cores(spark: SparkSession, connect_default: int = 2) -> int:
    """The session's task slots (`defaultParallelism`); `connect_default` on Spark Connect,
    whose clients have no SparkContext to ask."""
    try:
        return int(spark.sparkContext.defaultParallelism)
    except Exception:  # noqa: BLE001 - Spark Connect: no context
        return connect_default
