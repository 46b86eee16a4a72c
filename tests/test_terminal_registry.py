"""The terminal registry as an asset: loaded from the bank's file, refreshed when it changes, and
used by batch cleaning (terminals it does not list are quarantined)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from fraud_assets.cleaning.terminal_registry import read_registry
from fraud_assets.definitions import build_definitions
from fraud_assets.defs.keys import CLEAN, QUARANTINE, RAW
from fraud_assets.dev.inprocess import tick_sensor
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for
from tests.support import SMALL, platform_resources, write_days

pytestmark = pytest.mark.dagster


@pytest.fixture
def defs(landing: Path, tmp_path: Path) -> dg.Definitions:
    return build_definitions(platform_resources(landing, tmp_path / "data"))


def lake_of(tmp_path: Path) -> Lake:
    return Lake(*filesystem_for(str(tmp_path / "data" / "lake")))


def test_the_simulator_delivers_the_terminal_file_with_the_batches(landing: Path):
    write_days(landing, days=1)
    ids = pl.read_csv(landing / "terminals.csv")["terminal_id"].to_list()
    assert ids == list(range(SMALL["terminals"]))


def test_the_sensor_loads_the_file_once_per_content(landing, defs, tmp_path):
    write_days(landing, days=1)
    with dg.instance_for_test() as instance:
        first = tick_sensor(defs, instance, "terminal_registry_sensor")
        assert len(first.runs) == 1 and not first.failed
        registry = read_registry(lake_of(tmp_path))
        assert registry is not None and registry.ids.tolist() == list(range(400))
        again = tick_sensor(defs, instance, "terminal_registry_sensor", cursor=first.cursor)
        assert again.runs == [] and "unchanged" in again.skip_reason
        (landing / "terminals.csv").write_text("terminal_id\n" + "\n".join(map(str, range(401))))
        changed = tick_sensor(defs, instance, "terminal_registry_sensor", cursor=first.cursor)
        assert len(changed.runs) == 1 and not changed.failed
        assert len(read_registry(lake_of(tmp_path))) == 401


def test_a_file_dropping_many_known_terminals_waits_for_a_review(landing, defs, tmp_path):
    write_days(landing, days=1)
    job = defs.resolve_job_def("refresh_terminal_registry")
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance).success
        (landing / "terminals.csv").write_text("terminal_id\n" + "\n".join(map(str, range(100))))
        refused = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not refused.success
        assert "drops 300 of the 400 known terminals" in str(refused.all_events)
        assert len(read_registry(lake_of(tmp_path))) == 400  # the registry in use is unchanged
        config = {"ops": {"terminal_registry": {"config": {"accept_removals": True}}}}
        assert job.execute_in_process(instance=instance, run_config=config).success
        assert len(read_registry(lake_of(tmp_path))) == 100


def test_batch_cleaning_quarantines_terminals_the_registry_does_not_list(landing, defs, tmp_path):
    summary = write_days(landing, days=1)
    batch = summary.batches[0]
    (landing / "terminals.csv").write_text("terminal_id\n" + "\n".join(map(str, range(200))))
    raw = pl.read_csv(landing / f"{batch}.txt", has_header=False, skip_rows=1)
    expected = raw.filter(pl.col("column_3") >= 200).height  # the terminal id
    assert expected > 0
    with dg.instance_for_test() as instance:
        assert tick_sensor(defs, instance, "terminal_registry_sensor").failed == {}
        instance.add_dynamic_partitions("batches", [batch])
        run = defs.resolve_job_def("ingest_batch").execute_in_process(
            partition_key=batch, instance=instance, asset_selection=[RAW, CLEAN, QUARANTINE]
        )
        assert run.success
    quarantine = Lake(*filesystem_for(str(tmp_path / "data" / "lake"))).read_batch(
        "quarantine", batch
    )
    assert quarantine["reason"].to_list() == ["unknown_terminal"] * expected


def test_the_batch_assets_depend_on_the_registry(defs):
    graph = defs.resolve_asset_graph()
    parents = graph.get(CLEAN).parent_keys
    assert dg.AssetKey("terminal_registry") in parents


def test_a_shared_id_counts_in_the_rows_conserved_check_of_the_batch_that_quarantined_it(
    landing, defs, tmp_path
):
    """Through the Dagster assets: the second batch's copy of an id is quarantined, and its
    blocking rows_conserved check passes counting it; the metadata says what was checked."""
    from fraud_assets.rawdata.format import HEADER_LINE

    rows = {
        "2024-03-01": ["1,2024-03-01 10:00:00,3,4,5.00,36000,0,0,0"],
        "2024-03-02": [
            "1,2024-03-02 10:00:00,3,4,6.00,122400,1,0,0",
            "2,2024-03-02 11:00:00,3,4,7.00,126000,1,0,0",
        ],
    }
    for batch, lines in rows.items():
        (landing / f"{batch}.txt").write_bytes(HEADER_LINE + ("\n".join(lines) + "\n").encode())
    job = defs.resolve_job_def("ingest_batch")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", list(rows))
        for batch in rows:
            run = job.execute_in_process(
                partition_key=batch, instance=instance, asset_selection=[RAW, CLEAN, QUARANTINE]
            )
            assert run.success
        (check,) = [
            e.event_specific_data
            for e in run.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.event_specific_data.check_name == "rows_conserved"
        ]
        assert check.passed
        assert {k: v.value for k, v in check.metadata.items()} == {
            "raw": 2,
            "clean": 1,
            "quarantined": 1,
            "duplicates": 0,
            "duplicate_ids_of_other_batches": 1,
        }
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=CLEAN, asset_partitions=["2024-03-02"]), limit=1
        ).records[0]
        metadata = record.asset_materialization.metadata
        assert metadata["period"].value == "2024-03-02"
        assert metadata["terminals_checked_against"].value == "no registry: ids up to 999,999"
