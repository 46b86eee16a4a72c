"""Features of several batches on Spark, written by the executors and committed batch by batch.

The batches' dates are cut into time slices, one task each (`time_slices`). A task reads the
committed clean files of its dates and of the look-back days before them (and the scoring
service's labels), runs the default engine on them (`slice_features`:
`polars_engine.compute_features`, the same code and bits as in process) and writes its dates'
rows of each batch into a staging folder with the lake's writer; no row is shuffled. The driver
then commits each batch's files (lake/spark_staging.py) and gets per batch a row count, the fraud
share and the schema check's failures, from the tasks' small reports.
docs/decisions/spark-byte-ranges-and-time-slices.md.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from pyspark.sql import SparkSession

from fraud_assets.batch.spark_checks import failure_rows, summarise
from fraud_assets.features.spec import LOOKBACK_DAYS
from fraud_assets.lake import CLEAN, FEATURES, BatchCoverage, Lake, MissingHistoryError
from fraud_assets.lake.spark_staging import STAGING, StagedFile, adopt_all
from fraud_assets.lake.store import LABELS
from fraud_assets.spark.arrow import report, run_numbered, task_number
from fraud_assets.spark.session import cores

BATCH_FOLDER = "_batch"
ENGINE = "spark"


@dataclass(frozen=True)
class SparkFeatures:
    """A batch's committed features, described (its rows are in the lake)."""

    rows: int
    fraud_share: float
    schema: list[str] = field(default_factory=list)


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
    shuffled and none reaches the driver. docs/decisions/spark-byte-ranges-and-time-slices.md.
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
        done = run_numbered(spark, len(slices), _slice_features(task))
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
    the cores and keeps each slice under ROWS_PER_SLICE rows where it can without slices
    shorter than LOOKBACK_DAYS. More slices read the look-back days more often: as few as that
    allows."""
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
    # More slices only while each keeps at least LOOKBACK_DAYS of its own dates: beyond that the
    # look-back would be computed more than twice over (a 47 M-row batch of 243 dates in 8 M-row
    # slices would be 243 one-day slices, each reading 67 days); a slice then holds more rows.
    most = max(cores, days // LOOKBACK_DAYS)
    while count + cores <= most and max(cost(a, b) for a, b in chosen) > ROWS_PER_SLICE:
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

        k = task_number(batches)
        if k < 0:
            return
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
        yield from report(payload)

    return run


def _parallelism(spark: SparkSession) -> int:
    return cores(spark, int(spark.conf.get("spark.sql.shuffle.partitions") or 2))


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


def _commit_empty(lake: Lake, batch_id: str) -> None:
    with lake.commit(FEATURES, batch_id):
        pass  # no rows: a commit of no files, as the default engine's empty frame gives
