"""What a `mapInArrow` task receives, as one Polars frame: the engines' code runs on frames."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import pyarrow as pa


def partition_frame(batches: Iterable[pa.RecordBatch]) -> pl.DataFrame | None:
    """The task's record batches as one frame; None for an empty partition (nothing to yield)."""
    parts = list(batches)
    return pl.from_arrow(pa.Table.from_batches(parts)) if parts else None  # type: ignore[return-value]
