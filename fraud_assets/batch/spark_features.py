"""Features of several batches on Spark, written by the executors and committed batch by batch.

Executors read the committed clean files of the batches' joint look-back history (and the
scoring service's labels), compute the features (`spark_engine`) and write each batch's rows by
date into a staging folder; the driver then commits each batch's files (lake/spark_staging.py)
and gets per batch a row count, the fraud share and the schema check's failures.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from fraud_assets.batch.spark_checks import (
    PartitionFailures,
    failure_rows,
    spark_failures_by,
    summarise,
)
from fraud_assets.features.spark_engine import compute_features_spark, read_committed
from fraud_assets.features.spec import LOOKBACK_DAYS
from fraud_assets.lake import CLEAN, FEATURES, BatchCoverage, Lake, MissingHistoryError
from fraud_assets.lake.spark_staging import (
    STAGING,
    StagedFile,
    adopt_all,
    spark_url,
    write_staged_by,
)
from fraud_assets.lake.store import LABELS

ROWS_PER_SCAN = 1_000_000  # rows of history per partition of the window scans
ROWS_PER_WRITE = 1_000_000  # feature rows per writing task (all of a date's rows in one task)
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
    """Compute and commit the features of `ready` batches (their history checked already).

    The batches' dates are cut into slices of consecutive dates, one task each; a task reads
    its dates' committed clean files plus the look-back days before them (every feature of a
    row at time t looks at rows in (t - LOOKBACK_DAYS, t] only), runs the default engine
    (`polars_engine.compute_features`) on them and writes its dates' feature rows. No row is
    shuffled and none reaches the driver. docs/decisions/spark-time-slices.md.
    """
    first = min(dt.date.fromisoformat(known[b].first_date) for b in ready) - dt.timedelta(
        days=LOOKBACK_DAYS
    )
    last = max(dt.date.fromisoformat(known[b].last_date) for b in ready) + dt.timedelta(days=1)
    entries = [e for e in lake.files(CLEAN, first, last) if e.rows]
    out: dict[str, SparkFeatures | MissingHistoryError] = {}
    if not entries:
        for batch_id in ready:
            _commit_empty(lake, batch_id)
            out[batch_id] = SparkFeatures(0, 0.0)
        return out
    target_first = first + dt.timedelta(days=LOOKBACK_DAYS)
    slices = time_slices(entries, target_first, last, _parallelism(spark))
    labels = lake.files(LABELS, first, last) if LABELS else []
    for leftover in lake.fs.glob(lake.path(STAGING, FEATURES, f"chunk-{ready[0]}-*")):
        lake.fs.rm(leftover, recursive=True)  # of a crashed run: never read, never committed
    folder = lake.path(STAGING, FEATURES, f"chunk-{ready[0]}-{secrets.token_hex(4)}")
    task = _SliceTask(lake, tuple(ready), tuple(entries), tuple(labels), tuple(slices), folder)
    try:
        rows = (
            spark.range(0, len(slices), 1, len(slices))
            .mapInArrow(_slice_features(task), "payload string")
            .collect()
        )
        done = [json.loads(r["payload"]) for r in rows]
        files = sorted(
            (
                StagedFile(path, {BATCH_FOLDER: b, "tx_date": day}, d["k"], n)
                for d in done
                for b, day, path, n in d["files"]
            ),
            key=lambda f: (f.values["tx_date"], f.part),
        )
        summary = _summary({d["k"]: (d["counts"], d["failures"]) for d in done})
        for batch_id in ready:
            mine = [f for f in files if f.values.get(BATCH_FOLDER) == batch_id]
            made, fraud, failures = summary.get(batch_id, (0, 0.0, []))
            with lake.commit(FEATURES, batch_id) as commit:
                written = adopt_all(commit, FEATURES, mine, by_date=True)
                if made != written:  # a bug: the commit is not published
                    raise AssertionError(f"{batch_id}: {written} feature rows staged, not {made}")
            out[batch_id] = SparkFeatures(written, fraud, failures)
    finally:
        lake.fs.invalidate_cache(lake.root)
        if lake.fs.exists(folder):
            lake.fs.rm(folder, recursive=True)
    return out


ROWS_PER_SLICE = 8_000_000  # rows a slice's task holds, look-back included (its memory)


def time_slices(
    entries: list, first: dt.date, last: dt.date, cores: int
) -> list[tuple[dt.date, dt.date]]:  # noqa: ANN001 - FileEntry list
    """Dates first..last cut into consecutive slices, each a task's dates.

    A slice's cost is the rows of its dates and of the LOOKBACK_DAYS before them (read again by
    the slice); the cut minimises the largest cost for a number of slices that is a multiple of
    the cores and keeps each slice under ROWS_PER_SLICE rows where it can. More slices read
    the look-back days more often: as few as that allows."""
    days = (last - first).days + 1
    if days <= 0:
        return []
    base = first - dt.timedelta(days=LOOKBACK_DAYS)
    per_day = np.zeros(days + LOOKBACK_DAYS, dtype=np.int64)
    for e in entries:
        at = (e.day - base).days
        if 0 <= at < len(per_day):
            per_day[at] += e.rows
    prefix = np.concatenate([[0], np.cumsum(per_day)])

    def cost(a: int, b: int) -> int:  # target days a..b (0-based), with their look-back
        return int(prefix[b + LOOKBACK_DAYS + 1] - prefix[a])

    def pack(limit: int) -> list[tuple[int, int]]:
        out, a = [], 0
        while a < days:
            b = a
            while b + 1 < days and cost(a, b + 1) <= limit:
                b += 1
            out.append((a, b))
            a = b + 1
        return out

    def best(count: int) -> list[tuple[int, int]]:
        low, high = 0, cost(0, days - 1)
        while low < high:
            middle = (low + high) // 2
            if len(pack(middle)) <= count:
                high = middle
            else:
                low = middle + 1
        return pack(low)

    cores = max(1, cores)
    count = cores
    chosen = best(count)
    while count < days and max(cost(a, b) for a, b in chosen) > ROWS_PER_SLICE:
        count += cores
        chosen = best(count)
    return [(first + dt.timedelta(days=a), first + dt.timedelta(days=b)) for a, b in chosen]


def slice_features(
    lake: Lake, entries, labels, ready, a: dt.date, b: dt.date
) -> pl.DataFrame | None:  # noqa: ANN001 - FileEntry sequences, batch ids
    """The features of the rows of `ready` batches dated a..b, in (time, id) order: the
    committed clean files (`entries`) dated a - LOOKBACK_DAYS..b, the label files (`labels`, of
    the whole range, as the default engine reads them) applied, through the default engine.
    None when the slice has no rows at all."""
    from fraud_assets.features.polars_engine import compute_features
    from fraud_assets.online_state.publish import apply_labels

    since = a - dt.timedelta(days=LOOKBACK_DAYS)
    history = lake.read_files([e for e in entries if since <= e.day <= b])
    if history.height == 0:
        return None
    history = apply_labels(history, lake.read_files(list(labels)) if labels else None)
    features = compute_features(history)
    del history
    day = pl.col("tx_datetime").dt.date()
    return features.filter(pl.col("batch_id").is_in(list(ready)) & day.is_between(a, b))


@dataclass(frozen=True)
class _SliceTask:
    lake: Lake
    ready: tuple[str, ...]
    entries: tuple  # the committed clean files of the whole history (FileEntry)
    labels: tuple  # the scoring service's label files over the whole history (FileEntry)
    slices: tuple[tuple[dt.date, dt.date], ...]
    folder: str


def _slice_features(task: _SliceTask):  # noqa: ANN202 - the mapInArrow function
    """A slice's features: its dates' and look-back's clean rows, labels applied as the default
    engine applies them, through the default engine; its dates' rows of `ready` batches written
    by (batch, date) in (time, id) order."""
    from fraud_assets.batch.schemas import TransactionFeatures

    def run(batches):  # noqa: ANN001, ANN202
        from pyspark import TaskContext

        ks = [int(v) for b in batches for v in b.column(0).to_pylist()]
        if not ks:
            return
        k = ks[0]
        attempt = TaskContext.get().attemptNumber()
        a, b = task.slices[k]
        lake = task.lake
        payload: dict = {"k": k, "files": [], "counts": {}, "failures": []}
        mine = slice_features(lake, task.entries, task.labels, task.ready, a, b)
        day = pl.col("tx_datetime").dt.date()
        if mine is not None and mine.height:
            payload["failures"] = failure_rows(TransactionFeatures, mine, "batch_id")
            payload["counts"] = {
                batch: (n, int(f or 0))
                for batch, n, f in mine.group_by("batch_id")
                .agg(pl.len(), pl.col("tx_fraud").cast(pl.Int64).sum())
                .iter_rows()
            }
            parts = mine.with_columns(_d=day).partition_by(
                "batch_id", "_d", as_dict=True, maintain_order=True
            )
            for (batch, d), part in parts.items():
                path = (
                    f"{task.folder}/{BATCH_FOLDER}={batch}/tx_date={d.isoformat()}/"
                    f"part-{k:05d}-{attempt}.parquet"
                )
                lake._write_parquet(path, part.drop("_d"))  # noqa: SLF001 - the lake's writer
                payload["files"].append([batch, d.isoformat(), path, part.height])
        yield pa.RecordBatch.from_pylist(
            [{"payload": json.dumps(payload)}], schema=pa.schema([("payload", pa.string())])
        )

    return run


def features_into_lake_spark_rows(
    spark: SparkSession,
    lake: Lake,
    ready: list[str],
    known: dict[str, BatchCoverage],
) -> dict[str, SparkFeatures | MissingHistoryError]:
    """The earlier plan, kept for comparison (benchmarks): rows shuffled by customer, by
    terminal, then by date, the window scans in `mapInArrow` (features/spark_engine.py)."""
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
    reports = _accumulator(spark)
    features = compute_features_spark(
        history,
        max(1, -(-history_rows // ROWS_PER_SCAN)),
        _reporter(reports, ready) if reports is not None else None,
    ).where(F.col("batch_id").isin(ready))
    # Every row of a (batch, date) goes to one task, which writes them in (time, id) order: the
    # files of a date, in task order, hold the default engine's row order; no range sampling
    # (which would compute the features twice). A task writes several dates: few, full tasks.
    days = sum(
        (
            dt.date.fromisoformat(known[b].last_date) - dt.date.fromisoformat(known[b].first_date)
        ).days
        + 2
        for b in ready
    )
    rows = sum(known[b].rows for b in ready)
    tasks = min(days, max(_parallelism(spark), -(-rows // ROWS_PER_WRITE)))
    for leftover in lake.fs.glob(lake.path(STAGING, FEATURES, f"chunk-{ready[0]}-*")):
        lake.fs.rm(leftover, recursive=True)  # of a crashed run: never read, never committed
    folder = lake.path(STAGING, FEATURES, f"chunk-{ready[0]}-{secrets.token_hex(4)}")
    dated = features.withColumns(
        {BATCH_FOLDER: F.col("batch_id"), "tx_date": F.to_date("tx_datetime")}
    ).repartition(tasks, BATCH_FOLDER, "tx_date")
    try:
        files = write_staged_by(
            dated, lake, folder, [BATCH_FOLDER, "tx_date"], ["tx_time_seconds", "transaction_id"]
        )
        if reports is not None:
            summary = _summary(reports.value)
        else:  # no accumulators (Spark Connect): the staged rows are read again
            summary = _read_summary(spark, lake, [f.path for f in files])
        for batch_id in ready:
            mine = [f for f in files if f.values.get(BATCH_FOLDER) == batch_id]
            made, fraud, failures = summary.get(batch_id, (0, 0.0, []))
            with lake.commit(FEATURES, batch_id) as commit:
                written = adopt_all(commit, FEATURES, mine, by_date=True)
                if made != written:  # a bug: the commit is not published
                    raise AssertionError(f"{batch_id}: {written} feature rows staged, not {made}")
            out[batch_id] = SparkFeatures(written, fraud, failures)
    finally:
        lake.fs.invalidate_cache(lake.root)
        if lake.fs.exists(folder):
            lake.fs.rm(folder, recursive=True)
    return out


def _parallelism(spark: SparkSession) -> int:
    try:
        return int(spark.sparkContext.defaultParallelism)
    except Exception:  # noqa: BLE001 - Spark Connect: no context
        return int(spark.conf.get("spark.sql.shuffle.partitions") or 2)


def _accumulator(spark: SparkSession):  # noqa: ANN202 - an Accumulator, None on Spark Connect
    try:
        return spark.sparkContext.accumulator({}, PartitionFailures())
    except Exception:  # noqa: BLE001 - Spark Connect has no accumulators
        return None


def _reporter(reports, ready: list[str]):  # noqa: ANN001, ANN202 - the executors' inspect function
    """What each task of the last feature pass reports about the rows it made for `ready`
    batches: per batch, rows, frauds and the schema check's failure rows."""
    from fraud_assets.batch.schemas import TransactionFeatures

    wanted = list(ready)

    def report(frame: pl.DataFrame) -> None:
        from pyspark import TaskContext

        mine = frame.filter(pl.col("batch_id").is_in(wanted))
        counts = {
            b: (n, int(f or 0))
            for b, n, f in mine.group_by("batch_id")
            .agg(pl.len(), pl.col("tx_fraud").cast(pl.Int64).sum())
            .iter_rows()
        }
        failures = failure_rows(TransactionFeatures, mine, "batch_id") if mine.height else []
        reports.add({TaskContext.get().partitionId(): (counts, failures)})

    return report


def _summary(reports: dict) -> dict[str, tuple[int, float, list[str]]]:
    """(rows, fraud share, schema failures) per batch, from the tasks' reports."""
    rows: dict[str, int] = {}
    frauds: dict[str, int] = {}
    failures = []
    for counts, found in reports.values():
        for batch_id, (n, fraud) in counts.items():
            rows[batch_id] = rows.get(batch_id, 0) + n
            frauds[batch_id] = frauds.get(batch_id, 0) + fraud
        failures += found
    by_batch = summarise(failures)
    return {b: (n, frauds[b] / n if n else 0.0, by_batch.get(b, [])) for b, n in rows.items()}


def _read_summary(spark: SparkSession, lake: Lake, paths: list[str]) -> dict:
    from fraud_assets.batch.schemas import TransactionFeatures

    if not paths:
        return {}
    staged = spark.read.parquet(*(spark_url(lake, p) for p in paths))
    staged = staged.drop(*(c for c in (BATCH_FOLDER, "tx_date") if c in staged.columns))
    failures = spark_failures_by(TransactionFeatures, staged, "batch_id")
    return {
        r["batch_id"]: (r["n"], float(r["share"] or 0.0), failures.get(r["batch_id"], []))
        for r in staged.groupBy("batch_id")
        .agg(F.count("*").alias("n"), F.avg(F.col("tx_fraud").cast("double")).alias("share"))
        .collect()
    }


def _commit_empty(lake: Lake, batch_id: str) -> None:
    with lake.commit(FEATURES, batch_id):
        pass  # no rows: a commit of no files, as the default engine's empty frame gives
