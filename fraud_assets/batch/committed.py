"""Transaction ids the lake's clean table holds, by batch: the cross-batch duplicate check.

An id belongs to the batch that committed it first; the same id arriving in another batch is
quarantined there as `duplicate_id`. A batch's ids are read only when they could matter: each
clean commit records the range of its ids (`ID_RANGE` in its manifest), so a new batch whose ids
lie outside every other batch's range reads nothing, and a re-cleaned batch reads only the
batches whose ranges overlap its own. Commits without the range (older ones, or written by the
Spark engine) are read when first asked about. Loaded ids are kept up to date as the run commits.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fraud_assets.cleaning.rules import CommittedLookup, committed_in
from fraud_assets.lake import CLEAN, Lake
from fraud_assets.lake.manifests import Commit
from fraud_assets.lake.store import ID_RANGE


class CommittedIds:
    def __init__(
        self,
        lake: Lake | None = None,
        commits: dict[str, Commit] | None = None,
        by_batch: dict[str, np.ndarray] | None = None,
    ) -> None:
        self._lake = lake
        self._by_batch = dict(by_batch or {})  # batch -> its ids, sorted (loaded)
        # batch -> (lowest, highest) id, or None when its manifest does not say (read to know)
        self._ranges: dict[str, tuple[int, int] | None] = {}
        for batch_id, commit in (commits or {}).items():
            span = commit.meta.get(ID_RANGE)
            if batch_id in self._by_batch:
                continue
            if span == []:  # an empty batch: no ids to collide with, nothing to read
                self._by_batch[batch_id] = np.array([], dtype=np.int64)
            else:
                self._ranges[batch_id] = (int(span[0]), int(span[1])) if span else None

    @classmethod
    def from_lake(cls, lake: Lake) -> CommittedIds:
        """Reads the clean manifests only; ids are read when a lookup needs them."""
        return cls(lake, lake.commits(CLEAN))

    def record(self, batch_id: str, ids: pl.Series) -> None:
        """The batch's clean rows are committed now (replacing what it held before)."""
        self._ranges.pop(batch_id, None)
        self._by_batch[batch_id] = np.sort(ids.to_numpy())

    def of_others(self, batch_id: str) -> CommittedLookup:
        """ids -> True where a batch other than `batch_id` holds the id."""

        def committed(ids: np.ndarray) -> np.ndarray:
            if len(ids):
                self._load_overlapping(int(ids.min()), int(ids.max()), batch_id)
            return committed_in(self._by_batch, batch_id)(ids)

        return committed

    def _load_overlapping(self, low: int, high: int, skip: str) -> None:
        wanted = [
            b
            for b, span in self._ranges.items()
            if b != skip and (span is None or (span[0] <= high and span[1] >= low))
        ]
        for batch_id in wanted:
            del self._ranges[batch_id]
            if self._lake is None:
                continue
            frame = self._lake.read_batch(CLEAN, batch_id, columns=["transaction_id"])
            ids = frame["transaction_id"].to_numpy() if frame.height else np.array([], np.int64)
            self._by_batch[batch_id] = np.sort(ids)
