"""The landing sensor, through real ticks on a test instance, with the runs they request."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.definitions import build_definitions
from fraud_assets.inprocess import tick_sensor
from fraud_assets.raw_format import HEADER_LINE
from tests.conftest import platform_resources, write_days


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
    # Even with the cursor lost, run keys keep each delivery to one run.
    lost = tick(landing, instance, cursor=None)
    assert lost.succeeded == [] and len(lost.already_run) == 2
    assert len(instance.get_run_records()) == 2


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
    outcome = tick(landing, instance)
    assert outcome.skip_reason is not None
    assert instance.get_dynamic_partitions("batches") == []
