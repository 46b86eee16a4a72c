"""Publish the online feature state from the lake: per batch (the `online_feature_state` asset)
or all at once at a service's start (warm start). No Dagster here.

    state_rows(lake, batch_ids=None, origin=None) -> DataFrame   the rows the state holds
    publish_batches(store, lake, batch_ids, origin=None) -> Published
    warm_start(store, lake_url, emit=print, origin=None) -> Published | None
    labels_table(lake) -> DataFrame | None           the lake's `fraud_labels` rows

What the state holds: each card's transactions of the last 30 days and each terminal's
(labelled) transactions of the last 37 days, plus the one-day grace, counted from the newest
transaction (`OnlineFeatureStore.publish_snapshot` cuts them). Labels are the batch files'
`tx_fraud`, replaced by the service's own labels where `fraud_labels` has one.

Time: `tx_time_seconds` counts from the origin of the process that scores (FRAUD_ORIGIN_DATE).
The lake's counts from the batches' own origin (the simulator's start, a marker's date), which
need not be the same: given `origin`, the times are counted again from `tx_datetime`, so the
state and the live requests share one clock. Windows only compare times, so the features do
not change.

Idempotent: the store keys every transaction by id (first version wins), so publishing a batch
twice, or a day already scored live, counts every transaction once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from fraud_assets.features.spec import LABEL_DELAY_DAYS, OWN_RATIO_WINDOW_DAYS, WINDOWS_DAYS
from fraud_assets.lake import CLEAN, Lake
from fraud_assets.serving.online_features import SNAPSHOT_COLUMNS, OnlineFeatureStore

LABELS = "fraud_labels"  # lake table fed from the service's label log
LABEL_BATCH = "service"  # the file name of the label table's rows in each date partition
# Days of clean history a full state needs: terminal windows reach back delay + longest window,
# and the oldest entry they hold keeps its own 30-day ratio (terminal_fraud_run_min_ratio), so
# its card's 30 days before it; plus the grace day, plus one for a partial first day.
STATE_DAYS = LABEL_DELAY_DAYS + max(WINDOWS_DAYS) + OWN_RATIO_WINDOW_DAYS + 2


@dataclass(frozen=True)
class Published:
    batches: list[str]
    rows: int  # rows offered to the store
    added: int  # transactions new to the store
    newest_batch: str | None
    newest_transaction: dt.datetime | None
    seconds: float


def labels_table(lake: Lake, first: dt.date | None = None, last: dt.date | None = None):  # noqa: ANN201
    """The `fraud_labels` rows (dated first..last), or None when there is no such table."""
    dates = lake.dates(LABELS)
    if not dates:
        return None
    frame = lake.read_by_date(LABELS, first or dates[0], last or dates[-1])
    return frame if frame.height else None


def apply_labels(rows: pl.DataFrame, labels: pl.DataFrame | None) -> pl.DataFrame:
    """`tx_fraud` replaced by the service's label where one exists (the newest wins)."""
    if labels is None or labels.height == 0 or rows.height == 0:
        return rows
    newest = labels.sort("labelled_at").unique("transaction_id", keep="last")
    return (
        rows.join(
            newest.select("transaction_id", pl.col("fraud").alias("_label")),
            on="transaction_id",
            how="left",
            maintain_order="left",
        )
        .with_columns(
            tx_fraud=pl.when(pl.col("_label").is_null())
            .then(pl.col("tx_fraud"))
            .otherwise(pl.col("_label").cast(rows.schema["tx_fraud"]))
        )
        .drop("_label")
    )


def state_rows(
    lake: Lake, batch_ids: Sequence[str] | None = None, origin: dt.datetime | None = None
) -> pl.DataFrame:
    """Clean rows of `batch_ids` (default: the newest STATE_DAYS of the lake), labels applied,
    in (time, id) order; with `origin`, times counted from it."""
    columns = [*SNAPSHOT_COLUMNS, "tx_datetime"]
    if batch_ids is None:
        dates = lake.dates(CLEAN)
        if not dates:
            return pl.DataFrame()
        first = dates[-1] - dt.timedelta(days=STATE_DAYS)
        frame = lake.read_by_date(CLEAN, first, dates[-1])
    else:
        parts = [lake.read_batch(CLEAN, b) for b in batch_ids]
        parts = [p for p in parts if p.height]
        frame = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
    if frame.height == 0:
        return frame
    frame = frame.select(columns)
    if origin is not None:
        since = (pl.col("tx_datetime") - pl.lit(origin)).dt.total_seconds()
        frame = frame.with_columns(
            since.cast(frame.schema["tx_time_seconds"]).alias("tx_time_seconds")
        )
    frame = frame.sort("tx_time_seconds", "transaction_id")
    first_day = frame["tx_datetime"].min().date()  # type: ignore[union-attr]
    last_day = frame["tx_datetime"].max().date()  # type: ignore[union-attr]
    return apply_labels(frame, labels_table(lake, first_day, last_day))


def publish_batches(
    store: OnlineFeatureStore,
    lake: Lake,
    batch_ids: Sequence[str],
    origin: dt.datetime | None = None,
) -> Published:
    """Publish the batches' transactions (labels applied) into `store`, in time order."""
    started = time.perf_counter()
    rows = state_rows(lake, batch_ids, origin)
    added = 0
    ordered = sorted(batch_ids)
    for i, batch_id in enumerate(ordered):
        # Rows go in once; each batch id is recorded so /readyz can name the newest.
        part = rows if i == len(ordered) - 1 else rows.clear()
        added += store.publish_snapshot(part, batch_id=batch_id)
    return Published(
        batches=ordered,
        rows=rows.height,
        added=added,
        newest_batch=store.newest_batch(),
        newest_transaction=rows["tx_datetime"].max() if rows.height else None,  # type: ignore[arg-type]
        seconds=time.perf_counter() - started,
    )


def newest_batches(lake: Lake) -> list[str]:
    """Batches whose dates reach into the newest STATE_DAYS of the clean table."""
    coverage = lake.coverage()
    if not coverage:
        return []
    newest = max(dt.date.fromisoformat(c.last_date) for c in coverage.values())
    first = newest - dt.timedelta(days=STATE_DAYS)
    return sorted(b for b, c in coverage.items() if dt.date.fromisoformat(c.last_date) >= first)


def warm_start(
    store: OnlineFeatureStore,
    lake_url: str,
    emit: Callable[[str], None] = print,
    origin: dt.datetime | None = None,
) -> Published | None:
    """Load the newest state of the lake at `lake_url` into `store` (a service's start)."""
    from fraud_assets.lake.filesystems import filesystem_for

    started = time.perf_counter()
    try:
        lake = Lake(*filesystem_for(lake_url))
        batches = newest_batches(lake)
    except (OSError, ValueError) as e:
        emit(f"warm start: no lake at {lake_url} ({e}); the online state starts empty")
        return None
    if not batches:
        emit(f"warm start: no clean batches in {lake_url}; the online state starts empty")
        return None
    emit(
        f"warm start: loading the online state from {lake_url} "
        f"({len(batches)} batch(es) {batches[0]}..{batches[-1]}, newest {STATE_DAYS} days)…"
    )
    rows = state_rows(lake, origin=origin)
    added = store.publish_snapshot(rows, batch_id=batches[-1])
    took = time.perf_counter() - started
    result = Published(
        batches=batches,
        rows=rows.height,
        added=added,
        newest_batch=batches[-1],
        newest_transaction=rows["tx_datetime"].max() if rows.height else None,  # type: ignore[arg-type]
        seconds=took,
    )
    emit(
        f"warm start: {added:,} transactions loaded in {took:.1f} s; newest batch "
        f"{result.newest_batch}, newest transaction {result.newest_transaction}"
    )
    return result
