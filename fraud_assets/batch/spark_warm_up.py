"""Warming a Spark session's executors up before timing them (benchmarks, profiles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def warm_up(spark: SparkSession) -> float:
    """Start the executors' Python workers and import the engines there; the seconds it took.

    A one-off per worker process (Spark reuses them): the first Python job of a session pays
    for forking the workers and importing Polars, pyarrow and this package (seconds on a busy
    machine). Benchmarks call it before timing, so that a batch's figure is the batch's work;
    a long-running resource pays it once for all its batches.
    """
    import time

    import pyarrow as pa

    def load(batches):  # noqa: ANN001, ANN202
        import fraud_assets.batch.spark_features
        import fraud_assets.batch.spark_ranges  # noqa: F401 - imported for its cost

        for _ in batches:
            pass
        yield pa.RecordBatch.from_pylist([{"ok": 1}], schema=pa.schema([("ok", pa.int64())]))

    from fraud_assets.spark.session import cores

    slots = cores(spark)
    started = time.perf_counter()
    spark.range(0, slots, 1, slots).mapInArrow(load, "ok long").collect()
    return time.perf_counter() - started
