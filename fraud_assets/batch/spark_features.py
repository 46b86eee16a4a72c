"""Features of several batches on Spark, written by the executors and committed batch by batch.

Executors read the committed clean files of the batches' joint look-back history (and the
scoring service's labels), compute the features (`spark_engine`) and write each batch's rows by
date into a staging folder; the driver then commits each batch's files (lake/spark_staging.py)
and gets per batch a row count, the fraud share and the schema check's failures.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from fraud_assets.features.spark_engine import compute_features_spark, read_committed
from fraud_assets.features.spec import LOOKBACK_DAYS
from fraud_assets.lake import CLEAN, FEATURES, BatchCoverage, Lake, MissingHistoryError
from fraud_assets.lake.spark_staging import (
    STAGING,
    adopt_all,
    spark_url,
    staged_files,
    write_staged,
)
from fraud_assets.lake.store import LABELS

ROWS_PER_SCAN = 1_000_000  # rows of history per partition of the window scans
BATCH_FOLDER = "_batch"
ENGINE = "spark"


@dataclass(frozen=True)
class SparkFeatures:
    """A batch's committed features, described (its rows are in the lake)."""

    rows: int
    fraud_share: float
    schema: list[str] = field(default_factory=list)


def history_urls(lake: Lake, first: dt.date, last: dt.date) -> list[str]:
    return lake.urls(CLEAN, first, last, for_spark=True)


def with_labels(spark: SparkSession, lake: Lake, rows: DataFrame, first, last) -> DataFrame:  # noqa: ANN001
    """`tx_fraud` replaced by the scoring service's newest label where one exists (as
    `online_state.publish.apply_labels`)."""
    urls = lake.urls(LABELS, first, last, for_spark=True) if LABELS else []
    if not urls:
        return rows
    labels = read_committed(spark, urls)
    newest = Window.partitionBy("transaction_id").orderBy(F.col("labelled_at").desc())
    latest = (
        labels.withColumn("_n", F.row_number().over(newest))
        .where(F.col("_n") == 1)
        .select("transaction_id", F.col("fraud").alias("_label"))
    )
    kind = rows.schema["tx_fraud"].dataType
    return (
        rows.join(latest, on="transaction_id", how="left")
        .withColumn("tx_fraud", F.coalesce(F.col("_label").cast(kind), F.col("tx_fraud")))
        .drop("_label")
        .select(*rows.columns)
    )


def features_into_lake_spark(
    spark: SparkSession,
    lake: Lake,
    ready: list[str],
    known: dict[str, BatchCoverage],
) -> dict[str, SparkFeatures | MissingHistoryError]:
    """Compute and commit the features of `ready` batches (their history checked already)."""
    from fraud_assets.batch.schemas import TransactionFeatures
    from fraud_assets.batch.spark_checks import spark_failures_by

    first = min(dt.date.fromisoformat(known[b].first_date) for b in ready) - dt.timedelta(
        days=LOOKBACK_DAYS
    )
    last = max(dt.date.fromisoformat(known[b].last_date) for b in ready) + dt.timedelta(days=1)
    urls = history_urls(lake, first, last)
    out: dict[str, SparkFeatures | MissingHistoryError] = {}
    if not urls:
        for batch_id in ready:
            _commit_empty(lake, batch_id)
            out[batch_id] = SparkFeatures(0, 0.0)
        return out
    history = with_labels(spark, lake, read_committed(spark, urls), first, last)
    history_rows = sum(
        c.rows
        for c in known.values()
        if c.first_date <= last.isoformat() and c.last_date >= first.isoformat()
    )
    features = compute_features_spark(history, max(1, -(-history_rows // ROWS_PER_SCAN))).where(
        F.col("batch_id").isin(ready)
    )
    # One task per (batch, date) writes its rows in (time, id) order: no range sampling, which
    # would compute the features twice.
    days = sum(
        (
            dt.date.fromisoformat(known[b].last_date) - dt.date.fromisoformat(known[b].first_date)
        ).days
        + 2
        for b in ready
    )
    for leftover in lake.fs.glob(lake.path(STAGING, FEATURES, f"chunk-{ready[0]}-*")):
        lake.fs.rm(leftover, recursive=True)  # of a crashed run: never read, never committed
    folder = lake.path(STAGING, FEATURES, f"chunk-{ready[0]}-{secrets.token_hex(4)}")
    ordered = (
        features.withColumns({BATCH_FOLDER: F.col("batch_id"), "tx_date": F.to_date("tx_datetime")})
        .repartition(days, BATCH_FOLDER, "tx_date")
        .sortWithinPartitions(BATCH_FOLDER, "tx_date", "tx_time_seconds", "transaction_id")
    )
    try:
        write_staged(ordered, lake, folder, [BATCH_FOLDER, "tx_date"])
        staged = spark.read.parquet(spark_url(lake, folder)).drop(BATCH_FOLDER, "tx_date")
        summary = {
            r["batch_id"]: r
            for r in staged.groupBy("batch_id")
            .agg(F.count("*").alias("n"), F.avg(F.col("tx_fraud").cast("double")).alias("share"))
            .collect()
        }
        failures = spark_failures_by(TransactionFeatures, staged, "batch_id")
        files = staged_files(lake, folder)
        for batch_id in ready:
            mine = [f for f in files if f.values.get(BATCH_FOLDER) == batch_id]
            row = summary.get(batch_id)
            with lake.commit(FEATURES, batch_id) as commit:
                written = adopt_all(commit, FEATURES, mine, by_date=True)
                if (row["n"] if row else 0) != written:  # a bug: the commit is not published
                    raise AssertionError(f"{batch_id}: {written} feature rows staged, not {row}")
            out[batch_id] = SparkFeatures(
                written, float(row["share"] or 0.0) if row else 0.0, failures.get(batch_id, [])
            )
    finally:
        lake.fs.invalidate_cache(lake.root)
        if lake.fs.exists(folder):
            lake.fs.rm(folder, recursive=True)
    return out


def _commit_empty(lake: Lake, batch_id: str) -> None:
    with lake.commit(FEATURES, batch_id):
        pass  # no rows: a commit of no files, as the default engine's empty frame gives
