"""What a `mapInArrow` task receives, as one Polars frame: the engines' code runs on frames; and
jobs of numbered tasks that each do their own I/O and send back one small JSON report."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

import polars as pl
import pyarrow as pa


def partition_frame(batches: Iterable[pa.RecordBatch]) -> pl.DataFrame | None:
    """The task's record batches as one frame; None for an empty partition (nothing to yield)."""
    parts = list(batches)
    return pl.from_arrow(pa.Table.from_batches(parts)) if parts else None  # type: ignore[return-value]


REPORT = "payload string"  # the schema of a numbered task's output: one JSON report


def run_numbered(spark, count: int, task: Callable) -> list[dict]:  # noqa: ANN001 - a session
    """Run `task` as tasks 0..count-1 (one each) and return their reports in task order."""
    rows = spark.range(0, count, 1, count).mapInArrow(task, REPORT).collect()
    return sorted((json.loads(r["payload"]) for r in rows), key=lambda p: p["k"])


def task_number(batches: Iterable[pa.RecordBatch]) -> int:
    """The number a `run_numbered` task was given; -1 for an empty partition."""
    ids = [int(v) for b in batches for v in b.column(0).to_pylist()]
    return ids[0] if ids else -1


def report(payload: dict) -> Iterator[pa.RecordBatch]:
    """A task's report, as its output."""
    yield pa.RecordBatch.from_pylist(
        [{"payload": json.dumps(payload)}], schema=pa.schema([("payload", pa.string())])
    )
