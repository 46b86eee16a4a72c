"""Batch pipeline steps shared by the Dagster assets and the `fraud` CLI: same code, same files."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import IO

import polars as pl

from fraud_assets.cleaning import CleaningConfig, CleanResult, clean_batch
from fraud_assets.features.polars_engine import compute_features
from fraud_assets.features.spec import (
    CALENDAR_FEATURES,
    COUNT_FEATURES,
    FEATURE_COLUMNS,
    LOOKBACK_DAYS,
)
from fraud_assets.lake import (
    CLEAN,
    FEATURES,
    BatchCoverage,
    Lake,
    MissingHistoryError,
    missing_history,
)
from fraud_assets.privacy import Pseudonymizer


class RowsNotConservedError(RuntimeError):
    """raw rows != clean + quarantined + dropped duplicates: a bug, never bad data. Nothing of
    the batch is committed; `result` holds the counts for the `rows_conserved` check."""

    def __init__(self, batch_id: str, result: CleanResult) -> None:
        super().__init__(
            f"{batch_id}: rows not conserved: {result.raw_rows} raw != {result.clean.height} "
            f"clean + {result.quarantine.height} quarantined + {result.duplicates} duplicates; "
            "nothing was committed"
        )
        self.result = result


def content_digest(frame: pl.DataFrame) -> str:
    """A digest of a table's rows and schema: equal tables, equal digests.

    Re-cleaning a batch into the same rows keeps its digest, so the batches whose features read
    it are not refreshed for nothing; any change of a row changes it.
    """
    digest = hashlib.sha256(repr(frame.schema).encode())
    digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:24]


def clean_into_lake(
    lake: Lake,
    source: str | Path | IO[bytes] | bytes,
    batch_id: str,
    pseudonymizer: Pseudonymizer,
    config: CleaningConfig,
    name: str | None = None,
) -> CleanResult:
    result = clean_batch(source, batch_id, pseudonymizer, config, name=name)
    if not result.conserved:  # a bug, never bad data: every line has exactly one destination
        raise RowsNotConservedError(batch_id, result)
    first, last = _coverage(result, batch_id, config)
    coverage = BatchCoverage(
        batch_id,
        first.isoformat(),
        last.isoformat(),
        result.clean.height,
        result.origin.isoformat(),
        content=content_digest(result.clean),
    )
    # Clean rows, quarantine (raw lines to the restricted zone) and coverage: one commit.
    lake.commit_clean(batch_id, result.clean, result.quarantine, coverage)
    return result


def _coverage(
    result: CleanResult, batch_id: str, config: CleaningConfig
) -> tuple[dt.date, dt.date]:
    """The days the batch delivers: its period when known (rows outside it were quarantined, so
    they cannot widen it and hide a gap), else the days its clean rows fall on."""
    if config.period is not None:
        return config.period.first, config.period.last
    dates = result.clean["tx_datetime"].dt.date()
    first = dates.min() if result.clean.height else dt.date.fromisoformat(batch_id)
    return first, dates.max() if result.clean.height else first


def features_for_batch(
    lake: Lake,
    batch_id: str,
    engine: str = "polars",
    spark: object | None = None,
    batch_clean: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Features of one batch's transactions, computed over the batch plus its look-back history.

    `batch_clean` is the batch's clean table when the caller has just made it: it is used instead
    of reading the same rows back from the lake.
    """
    cleans = {batch_id: batch_clean} if batch_clean is not None else {}
    result = features_for_batches(lake, [batch_id], engine, spark, cleans)[batch_id]
    if isinstance(result, MissingHistoryError):
        raise result
    return result


class LookbackMissing(MissingHistoryError):
    """Dates of a batch's look-back window that no clean batch covers yet."""

    def __init__(self, message: str, missing: list[dt.date]) -> None:
        super().__init__(message)
        self.missing = missing


def history_problem(batch_id: str, known: dict[str, BatchCoverage]) -> MissingHistoryError | None:
    """Why a batch cannot be featurised yet (no clean data, or look-back dates missing)."""
    if batch_id not in known:
        return MissingHistoryError(f"Batch {batch_id} has no clean data yet: clean it first.")
    batch = known[batch_id]
    missing = missing_history(batch, known, LOOKBACK_DAYS)
    if not missing:
        return None
    return LookbackMissing(
        f"Batch {batch_id} needs {LOOKBACK_DAYS} days of clean history before "
        f"{batch.first_date}, but these dates are missing: "
        f"{', '.join(d.isoformat() for d in missing)}. "
        "Ingest the batches covering them first; this batch will then succeed.",
        missing,
    )


def features_for_batches(
    lake: Lake,
    batch_ids: list[str],
    engine: str = "polars",
    spark: object | None = None,
    cleans: dict[str, pl.DataFrame] | None = None,
) -> dict[str, pl.DataFrame | MissingHistoryError]:
    """Features of several batches from one engine call over their joint look-back history.

    Each batch gets exactly the rows and values it would get alone: windows only look back, the
    history read covers every batch's look-back, and window sums are exact (features/windows.py).
    A batch whose history is missing gets its `MissingHistoryError` instead; the others go on.
    `cleans` are clean tables the caller holds in memory (used instead of reading them back).
    """
    cleans = dict(cleans or {})
    known = lake.coverage()
    out: dict[str, pl.DataFrame | MissingHistoryError] = {}
    ready = []
    for batch_id in batch_ids:
        problem = history_problem(batch_id, known)
        if problem is None:
            ready.append(batch_id)
        else:
            out[batch_id] = problem
    if not ready:
        return out
    first = min(dt.date.fromisoformat(known[b].first_date) for b in ready) - dt.timedelta(
        days=LOOKBACK_DAYS
    )
    # One day more: a batch's `24:00:00` of its last day is filed under the next date.
    last = max(dt.date.fromisoformat(known[b].last_date) for b in ready) + dt.timedelta(days=1)
    if engine == "spark" and (urls := _spark_urls(lake, first, last)) is not None:
        # Spark reads the committed clean files itself: the history never passes through Python.
        if not urls:
            return out | {b: pl.DataFrame() for b in ready}
        features = _compute_spark_files(lake, first, urls, spark)
        return out | _by_batch(features, ready)
    held = [frame for frame in cleans.values() if frame.height]
    if held:
        others = lake.read_by_date(CLEAN, first, last, exclude_batches=set(cleans))
        history = pl.concat([others, *held]) if others.height else pl.concat(held)
    else:
        history = lake.read_by_date(CLEAN, first, last)
    if history.height == 0:
        return out | {b: history for b in ready}
    # Labels the scoring service received replace the batch files' where they exist: terminal
    # risk and the training label then agree with what the online store uses.
    from fraud_assets.online_state.publish import apply_labels, labels_table

    history = apply_labels(history, labels_table(lake, first, last))
    features = _compute(history, engine, spark)
    if len(ready) == 1 and history.height == known[ready[0]].rows:
        return out | {ready[0]: features}  # no other rows: nothing to drop, save a copy
    return out | _by_batch(features, ready)


def _by_batch(features: pl.DataFrame, batch_ids: list[str]) -> dict[str, pl.DataFrame]:
    parts = features.partition_by("batch_id", as_dict=True, maintain_order=True)
    empty = features.clear()
    return {batch_id: parts.get((batch_id,), empty) for batch_id in batch_ids}


_SPARK_SCHEMES = ("file:", "s3a:", "hdfs:", "viewfs:", "gs:", "abfs:", "abfss:")


def spark_reaches(lake: Lake) -> bool:
    """Can Spark's executors read and write the lake's files? Not an in-memory file system."""
    probe = lake.fs.unstrip_protocol(lake.root)
    probe = "s3a:" + probe.removeprefix("s3:") if probe.startswith("s3:") else probe
    return probe.startswith(_SPARK_SCHEMES)


def _spark_urls(lake: Lake, first: dt.date, last: dt.date) -> list[str] | None:
    """The committed clean files Spark should read, or None when Spark cannot reach the lake
    (an in-memory file system): the rows then go to Spark from the driver."""
    if not spark_reaches(lake):
        return None
    return lake.urls(CLEAN, first, last, for_spark=True)


def _compute_spark_files(
    lake: Lake, first: dt.date, urls: list[str], spark: object
) -> pl.DataFrame:
    from fraud_assets.features.spark_engine import compute_features_spark, read_committed

    out = compute_features_spark(read_committed(spark, urls)).toArrow()
    # The clean table's own types, from one committed file (Spark's may be wider or zoned).
    sample = lake.read_files(lake.files(CLEAN, first)[:1])
    return _like_polars_engine(pl.from_arrow(out), sample).sort("tx_time_seconds", "transaction_id")


def _compute(history: pl.DataFrame, engine: str, spark: object | None) -> pl.DataFrame:
    if engine == "polars":
        return compute_features(history)
    if engine == "spark":
        from fraud_assets.features.spark_engine import compute_features_spark

        # Arrow both ways: ~10x faster than going through pandas rows.
        out = compute_features_spark(spark.createDataFrame(history.to_arrow())).toArrow()
        # Spark's row order is arbitrary; the Polars engine's is (time, id), so is the table's.
        return _like_polars_engine(pl.from_arrow(out), history).sort(
            "tx_time_seconds", "transaction_id"
        )
    raise ValueError(f"unknown engine {engine!r}: expected 'polars' or 'spark'")


def features_into_lake(
    lake: Lake,
    batch_id: str,
    engine: str = "polars",
    spark: object | None = None,
    batch_clean: pl.DataFrame | None = None,
) -> pl.DataFrame:
    features = features_for_batch(lake, batch_id, engine, spark, batch_clean)
    lake.write_by_date(FEATURES, batch_id, features)
    return features


def _like_polars_engine(features: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Spark's output in the Polars engine's column order and types, so both write one table."""
    types = {**history.schema}
    for name in FEATURE_COLUMNS:
        if name in CALENDAR_FEATURES:
            types[name] = pl.Int8
        else:
            types[name] = pl.Int64 if name in COUNT_FEATURES else pl.Float64
    out = features.select(list(types))
    # Spark hands naive timestamps back as UTC instants; the clean table's are naive.
    zoned = [n for n, t in out.schema.items() if isinstance(t, pl.Datetime) and t.time_zone]
    return out.with_columns(pl.col(zoned).dt.replace_time_zone(None)).cast(types)
