"""Transaction ids the lake's clean table holds, by batch: the cross-batch duplicate check.

An id belongs to the batch that committed it first; the same id arriving in another batch is
quarantined there as `duplicate_id`. The ids are read once per run (one column of the clean
table) and kept up to date as the run commits batches.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from fraud_assets.cleaning.rules import CommittedLookup, committed_in
from fraud_assets.lake import CLEAN, Lake


class CommittedIds:
    def __init__(self, by_batch: dict[str, np.ndarray] | None = None) -> None:
        self._by_batch = dict(by_batch or {})  # batch -> its ids, sorted

    @classmethod
    def from_lake(cls, lake: Lake) -> CommittedIds:
        rows = lake.read_by_date(
            CLEAN, dt.date.min, dt.date.max, columns=["transaction_id", "batch_id"]
        )
        if rows.height == 0:
            return cls()
        parts = rows.partition_by("batch_id", as_dict=True)
        return cls(
            {batch: np.sort(part["transaction_id"].to_numpy()) for (batch,), part in parts.items()}
        )

    def record(self, batch_id: str, ids: pl.Series) -> None:
        """The batch's clean rows are committed now (replacing what it held before)."""
        self._by_batch[batch_id] = np.sort(ids.to_numpy())

    def of_others(self, batch_id: str) -> CommittedLookup:
        """ids -> True where a batch other than `batch_id` holds the id."""
        return committed_in(self._by_batch, batch_id)
