"""The landing sensor, through real ticks on a test instance, with the runs they request."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from fraud_assets.definitions import build_definitions
from fraud_assets.dev.inprocess import tick_sensor
from fraud_assets.features.spec import LOOKBACK_DAYS
from fraud_assets.rawdata.format import HEADER_LINE
from tests.support import platform_resources, write_days

pytestmark = pytest.mark.dagster


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(landing: Path, instance: dg.DagsterInstance, cursor: str | None = None):
    defs = build_definitions(platform_resources(landing, landing.parent))
    return tick_sensor(defs, instance, "landing_sensor", cursor=cursor, log_level="ERROR")


def row_count(instance: dg.DagsterInstance, batch_id: str) -> int:
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("raw_transactions"), asset_partitions=[batch_id]
        ),
        limit=1,
    ).records[0]
    return record.asset_materialization.metadata["dagster/row_count"].value


def test_new_complete_batches_become_partitions_and_are_ingested(landing, instance):
    summary = write_days(landing, days=2)
    outcome = tick(landing, instance)
    assert outcome.added_partitions == summary.batches
    assert outcome.succeeded == summary.batches and outcome.failed == {}
    assert instance.get_dynamic_partitions("batches") == summary.batches
    for batch_id in summary.batches:
        marker = json.loads((landing / f"{batch_id}.done").read_text())
        assert row_count(instance, batch_id) == marker["rows"]


def test_a_repeated_tick_does_nothing_new(landing, instance):
    write_days(landing, days=2)
    first = tick(landing, instance)
    again = tick(landing, instance, cursor=first.cursor)
    assert again.skip_reason and "No new complete batch" in again.skip_reason
    assert again.succeeded == [] and again.added_partitions == []
    # Even with the cursor lost, a delivery whose content matches the raw batch already ingested
    # is not requested again (both batches landed together, so they went as one ranged run).
    lost = tick(landing, instance, cursor=None)
    assert lost.succeeded == [] and lost.runs == [] and lost.added_partitions == []
    assert len(instance.get_run_records()) == 1


def test_a_batch_without_its_marker_waits_for_it(landing, instance):
    write_days(landing, days=1)
    marker = landing / "2024-03-01.done"
    saved = marker.read_text()
    marker.unlink()
    outcome = tick(landing, instance)
    assert outcome.skip_reason and "1 waiting for a marker" in outcome.skip_reason
    assert instance.get_dynamic_partitions("batches") == []
    marker.write_text(saved)
    outcome = tick(landing, instance, cursor=outcome.cursor)
    assert outcome.succeeded == ["2024-03-01"]


def test_a_bad_header_fails_its_own_run_and_the_others_go_on(landing, instance):
    write_days(landing, days=2)
    (landing / "2024-02-28.txt").write_bytes(b"id;when;amount\n1;2024-02-28;3.00\n")
    (landing / "2024-02-28.done").write_text("")
    outcome = tick(landing, instance)
    assert outcome.succeeded == ["2024-03-01", "2024-03-02"]
    assert list(outcome.failed) == ["2024-02-28"]
    message = outcome.failed["2024-02-28"]
    assert f"{landing}/2024-02-28.txt line 1" in message and "header" in message


def test_a_relanded_batch_with_new_content_is_ingested_once_more(landing, instance):
    write_days(landing, days=1, seed=1)
    first = tick(landing, instance)
    write_days(landing, days=1, seed=2)  # the bank re-exports the same day, corrected
    second = tick(landing, instance, cursor=first.cursor)
    assert second.succeeded == ["2024-03-01"] and second.added_partitions == []
    third = tick(landing, instance, cursor=second.cursor)
    assert third.succeeded == []


def test_files_that_are_not_batches_are_ignored(landing, instance):
    (landing / "notes.txt").write_text("hello")
    (landing / "2024-13.txt").write_bytes(HEADER_LINE)
    (landing / "2025-13-45.txt").write_bytes(HEADER_LINE)  # shaped like a date, but none
    outcome = tick(landing, instance)
    assert outcome.skip_reason is not None
    assert instance.get_dynamic_partitions("batches") == []


def no_champion(landing: Path) -> None:
    """The lake's champion snapshot says "none", so ingest runs need not ask MLflow."""
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.modeling.champion_snapshot import write_champion

    write_champion(Lake(*filesystem_for(str(landing.parent / "lake"))), None, "fraud-detector")


def runs(instance: dg.DagsterInstance) -> list[dict[str, str]]:
    """Tags of every run, oldest first."""
    return [dict(r.dagster_run.tags) for r in reversed(instance.get_run_records())]


@pytest.fixture
def per_run(monkeypatch: pytest.MonkeyPatch):
    """Set FRAUD_BATCHES_PER_RUN for the sensor (settings are read once per process)."""
    from fraud_assets.settings import batch_settings

    def set_limit(n: int) -> None:
        monkeypatch.setenv("FRAUD_BATCHES_PER_RUN", str(n))
        batch_settings.cache_clear()

    yield set_limit
    batch_settings.cache_clear()


def test_a_burst_becomes_ranged_runs_in_time_order_and_a_single_batch_its_own_run(
    landing, instance, per_run
):
    per_run(2)
    no_champion(landing)
    summary = write_days(landing, days=5)
    outcome = tick(landing, instance)
    assert outcome.succeeded == summary.batches
    ranges = [
        (
            t.get("dagster/asset_partition_range_start"),
            t.get("dagster/asset_partition_range_end"),
            t.get("dagster/partition"),
        )
        for t in runs(instance)
    ]
    b = summary.batches
    assert ranges == [(b[0], b[1], None), (b[2], b[3], None), (None, None, b[4])]
    assert all(t["fraud/reason"].startswith("new batch: ") for t in runs(instance))

    # A sensor that starts without a cursor (a new daemon, another grouping) does not ingest the
    # same files again: the raw materializations already hold their checksums.
    per_run(3)
    fresh = tick(landing, instance, cursor=None)
    assert fresh.succeeded == [] and fresh.already_run == [] and len(runs(instance)) == 3

    write_days(landing, days=6)  # the same days again (same bytes), and one more
    outcome = tick(landing, instance, cursor=fresh.cursor)
    assert outcome.succeeded == ["2024-03-06"] and outcome.added_partitions == ["2024-03-06"]
    newest = runs(instance)[-1]
    assert newest["dagster/partition"] == "2024-03-06"  # one batch: a plain run, at once
    assert newest["fraud/reason"] == "new batch: 2024-03-06"


def test_relanding_earlier_content_again_is_a_new_delivery(landing, instance):
    no_champion(landing)
    write_days(landing, days=1, seed=1)  # A
    first = tick(landing, instance)
    write_days(landing, days=1, seed=2)  # B
    second = tick(landing, instance, cursor=first.cursor)
    write_days(landing, days=1, seed=1)  # back to A
    third = tick(landing, instance, cursor=second.cursor)
    assert first.succeeded == second.succeeded == third.succeeded == ["2024-03-01"]
    reasons = [t["fraud/reason"] for t in runs(instance)]
    assert reasons == [
        "new batch: 2024-03-01",
        "re-landed with new content (delivery 2): 2024-03-01",
        "re-landed with new content (delivery 3): 2024-03-01",
    ]
    assert tick(landing, instance, cursor=third.cursor).succeeded == []


def features_of(landing: Path, batch: str) -> pl.DataFrame:
    from fraud_assets.lake import FEATURES, Lake
    from fraud_assets.lake.filesystems import filesystem_for

    return Lake(*filesystem_for(str(landing.parent / "lake"))).read_batch(FEATURES, batch)


def test_a_batch_refused_for_missing_history_runs_again_once_that_history_lands(landing, instance):
    no_champion(landing)
    write_days(landing, days=3)
    held = {p.name: p.read_bytes() for p in landing.glob("2024-03-02.*")}
    for name in held:
        (landing / name).unlink()
    first = tick(landing, instance)  # days 1 and 3: day 3 misses day 2
    assert first.succeeded == ["2024-03-01"]
    assert (
        "2024-03-02" in first.failed["2024-03-03"]
        and f"needs {LOOKBACK_DAYS} days" in first.failed["2024-03-03"]
    )
    idle = tick(landing, instance, cursor=first.cursor)
    assert idle.succeeded == [] and idle.failed == {}  # still missing: nothing to retry

    for name, content in held.items():
        (landing / name).write_bytes(content)
    landed = tick(landing, instance, cursor=idle.cursor)
    assert landed.succeeded == ["2024-03-02"]
    retried = tick(landing, instance, cursor=landed.cursor)
    assert retried.succeeded == ["2024-03-03"]
    last = runs(instance)[-1]
    assert last["fraud/reason"].startswith("history now complete for 2024-03-03")
    assert features_of(landing, "2024-03-03").height > 0
    assert tick(landing, instance, cursor=retried.cursor).succeeded == []  # once


def test_a_relanded_batch_refreshes_the_features_of_later_batches_that_read_it(
    landing, instance, tmp_path
):
    no_champion(landing)
    summary = write_days(landing, days=4)
    first = tick(landing, instance)
    assert first.succeeded == summary.batches
    before = features_of(landing, "2024-03-04")

    # The bank re-exports day 2 with other content: day 2 is re-ingested, then days 3 and 4,
    # whose customer windows read day 2, are refreshed by the next tick. The new transactions
    # have ids of their own (an id another batch holds would be quarantined as duplicate_id).
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.simulation import SimulationParams
    from fraud_assets.simulation.writer import write_simulation
    from tests.support import SMALL

    redo = SimulationParams(days=4, seed=5, first_transaction_id=10_000_000, **SMALL)
    write_simulation(redo, *filesystem_for(str(landing / "redo")))
    for suffix in (".txt", ".done"):
        (landing / f"2024-03-02{suffix}").write_bytes(
            (landing / "redo" / f"2024-03-02{suffix}").read_bytes()
        )
    relanded = tick(landing, instance, cursor=first.cursor)
    assert relanded.succeeded == ["2024-03-02"]
    refreshed = tick(landing, instance, cursor=relanded.cursor)
    assert refreshed.succeeded == ["2024-03-03", "2024-03-04"]
    last = runs(instance)[-1]
    assert last["dagster/asset_partition_range_start"] == "2024-03-03"
    assert last["fraud/reason"].startswith("history of 2024-03-03 changed: 2024-03-02 re-landed")
    assert tick(landing, instance, cursor=refreshed.cursor).succeeded == []

    # The refreshed features equal a fresh ingest of the same four files.
    fresh = tmp_path / "fresh" / "landing"
    fresh.mkdir(parents=True)
    for p in landing.glob("2024-03-0*"):
        (fresh / p.name).write_bytes(p.read_bytes())
    no_champion(fresh)
    with dg.instance_for_test() as other:
        assert tick(fresh, other).succeeded == summary.batches
    after = features_of(landing, "2024-03-04")
    assert not after.equals(before)
    assert after.equals(features_of(fresh, "2024-03-04"))
