"""The feature assets through the landing sensor: every batch gets its assets, checks and row
counts; a batch whose history is missing is refused, then succeeds once it is there.

(Moved from tests/test_features.py, which keeps the feature definitions' unit and property
tests: these need a Dagster instance.)"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from fraud_assets.batch.schemas import TransactionFeatures
from fraud_assets.definitions import build_definitions
from fraud_assets.dev.inprocess import tick_sensor
from fraud_assets.features.spec import FEATURE_COLUMNS
from tests.support import platform_resources, write_days

pytestmark = pytest.mark.dagster


@pytest.fixture
def defs_for(tmp_path: Path):
    def make(landing: Path) -> dg.Definitions:
        return build_definitions(platform_resources(landing, tmp_path))

    return make


def test_every_batch_gets_its_three_assets_checks_and_row_counts(tmp_path, defs_for):
    landing = tmp_path / "landing"
    summary = write_days(landing, days=3, dirty=0.01)
    defs = defs_for(landing)
    with dg.instance_for_test() as instance:
        outcome = tick_sensor(defs, instance, "landing_sensor", log_level="ERROR")
        assert outcome.succeeded == summary.batches, outcome.failed
        for batch in summary.batches:
            counts = {}
            for key in (
                "raw_transactions",
                "clean_transactions",
                "quarantined_transactions",
                "transaction_features",
            ):
                record = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[batch]),
                    limit=1,
                ).records[0]
                counts[key] = record.asset_materialization.metadata["dagster/row_count"].value
            duplicates = (
                pl.read_csv(landing / f"{batch}.dirty.csv")
                .filter(pl.col("defect") == "duplicate")
                .height
            )
            assert counts["raw_transactions"] == (
                counts["clean_transactions"] + counts["quarantined_transactions"] + duplicates
            )
            assert counts["transaction_features"] == counts["clean_transactions"]
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("clean_transactions"), "rows_conserved"), limit=10
        )
        assert len(checks) == 3
    features = pl.read_parquet(tmp_path / "lake" / "features" / "**" / "*.parquet")
    TransactionFeatures.validate(features)
    assert set(FEATURE_COLUMNS) <= set(features.columns)


def test_a_batch_whose_history_is_missing_is_refused_then_succeeds_once_it_is_there(
    tmp_path, defs_for
):
    landing = tmp_path / "landing"
    write_days(landing, days=3)
    held_back = tmp_path / "held_back"
    held_back.mkdir()
    for suffix in (".txt", ".done"):  # the middle day arrives late
        (landing / f"2024-03-02{suffix}").rename(held_back / f"2024-03-02{suffix}")
    defs = defs_for(landing)
    with dg.instance_for_test() as instance:
        first = tick_sensor(defs, instance, "landing_sensor", log_level="ERROR")
        assert first.succeeded == ["2024-03-01"]
        message = first.failed["2024-03-03"]
        assert "missing: 2024-03-02" in message and "2024-03-03" in message

        for suffix in (".txt", ".done"):
            (held_back / f"2024-03-02{suffix}").rename(landing / f"2024-03-02{suffix}")
        second = tick_sensor(
            defs, instance, "landing_sensor", cursor=first.cursor, log_level="ERROR"
        )
        assert second.succeeded == ["2024-03-02"]
        retry = defs.resolve_job_def("ingest_batch").execute_in_process(
            partition_key="2024-03-03", instance=instance, raise_on_error=False
        )
        assert retry.success
