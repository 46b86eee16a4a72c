"""The cross-batch duplicate check reads only the batches whose ids could collide.

A one-batch run over a lake of half a year used to read every committed id (1.8 M) before
cleaning its 10 k rows; the answer must stay the one an eager read of every batch gives.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.batch.committed import CommittedIds
from fraud_assets.cleaning.rules import committed_in
from fraud_assets.lake import CLEAN, Lake
from fraud_assets.lake.coverage import BatchCoverage
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.lake.store import ID_RANGE


def commit_ids(lake: Lake, batch_id: str, ids: list[int]) -> None:
    day = dt.date.fromisoformat(batch_id)
    clean = pl.DataFrame(
        {
            "transaction_id": pl.Series(ids, dtype=pl.Int64),
            "tx_datetime": [dt.datetime.combine(day, dt.time(12))] * len(ids),
            "batch_id": [batch_id] * len(ids),
        }
    )
    quarantine = pl.DataFrame({"line_no": pl.Series([], dtype=pl.Int64)})
    coverage = BatchCoverage(batch_id, batch_id, batch_id, len(ids), batch_id)
    lake.commit_clean(batch_id, clean, quarantine, coverage)


class CountingLake(Lake):
    def __init__(self, root: str) -> None:
        super().__init__(*filesystem_for(root))
        self.reads: list[str] = []

    def read_batch(self, table: str, batch_id: str, columns: list[str] | None = None):
        self.reads.append(batch_id)
        return super().read_batch(table, batch_id, columns)


def test_a_clean_commit_records_the_range_of_its_ids(tmp_path: Path):
    lake = Lake(*filesystem_for(str(tmp_path)))
    commit_ids(lake, "2025-01-01", [30, 10, 20])
    commit_ids(lake, "2025-01-02", [])
    assert lake.commit_of(CLEAN, "2025-01-01").meta[ID_RANGE] == [10, 30]
    assert lake.commit_of(CLEAN, "2025-01-02").meta[ID_RANGE] == []


def test_new_ids_beyond_every_batch_read_no_batch(tmp_path: Path):
    lake = CountingLake(str(tmp_path))
    for n, day in enumerate(["2025-01-01", "2025-01-02", "2025-01-03"]):
        commit_ids(lake, day, list(range(n * 100, n * 100 + 100)))
    ids = CommittedIds.from_lake(lake)
    found = ids.of_others("2025-01-04")(np.arange(300, 400, dtype=np.int64))
    assert not found.any()
    assert lake.reads == []


def test_overlapping_ids_read_only_the_batches_they_overlap(tmp_path: Path):
    lake = CountingLake(str(tmp_path))
    for n, day in enumerate(["2025-01-01", "2025-01-02", "2025-01-03"]):
        commit_ids(lake, day, list(range(n * 100, n * 100 + 100)))
    ids = CommittedIds.from_lake(lake)
    found = ids.of_others("2025-01-04")(np.array([150, 160, 250], dtype=np.int64))
    assert found.tolist() == [True, True, True]
    assert sorted(lake.reads) == ["2025-01-02", "2025-01-03"]
    # A batch is never checked against its own committed ids, nor read for that.
    lake.reads.clear()
    own = ids.of_others("2025-01-01")(np.array([5, 50], dtype=np.int64))
    assert own.tolist() == [False, False] and lake.reads == []


def test_a_commit_without_a_recorded_range_is_read_when_asked(tmp_path: Path):
    lake = CountingLake(str(tmp_path))
    commit_ids(lake, "2025-01-01", [1, 2, 3])
    manifest = lake.commit_of(CLEAN, "2025-01-01")
    del manifest.meta[ID_RANGE]  # as an older commit, or the Spark engine's, has it
    ids = CommittedIds(lake, {"2025-01-01": manifest})
    assert ids.of_others("2025-01-09")(np.array([3, 4], dtype=np.int64)).tolist() == [True, False]
    assert lake.reads == ["2025-01-01"]


def test_ids_recorded_during_the_run_replace_what_the_lake_held(tmp_path: Path):
    lake = CountingLake(str(tmp_path))
    commit_ids(lake, "2025-01-01", [1, 2, 3])
    ids = CommittedIds.from_lake(lake)
    ids.record("2025-01-01", pl.Series([7, 8]))
    assert ids.of_others("2025-01-02")(np.array([2, 7], dtype=np.int64)).tolist() == [False, True]
    assert lake.reads == []


batches_of_ids = st.lists(
    st.lists(st.integers(0, 400), max_size=30, unique=True), min_size=1, max_size=5
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    committed=batches_of_ids,
    asked=st.lists(st.integers(0, 400), max_size=40),
    own=st.integers(0, 5),
)
def test_the_lookup_agrees_with_reading_every_batch(tmp_path_factory, committed, asked, own):
    lake = Lake(*filesystem_for(str(tmp_path_factory.mktemp("lake"))))
    names = [(dt.date(2025, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(6)]
    for name, ids in zip(names, committed, strict=False):
        commit_ids(lake, name, ids)
    eager = {
        n: np.sort(np.array(ids, dtype=np.int64)) for n, ids in zip(names, committed, strict=False)
    }
    query = np.array(asked, dtype=np.int64)
    expected = committed_in(eager, names[own])(query)
    assert CommittedIds.from_lake(lake).of_others(names[own])(query).tolist() == expected.tolist()
