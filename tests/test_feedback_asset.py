"""The `feedback_features` asset through Dagster (in process, after the real ingest run): each
batch row gets the confirmed-fraud counts of the labels the service had recorded before it --
a label known after every transaction changes nothing -- and the training data joins them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from fraud_assets.batch.training_data import latest_features
from fraud_assets.definitions import build_definitions
from fraud_assets.defs.feedback import FEEDBACK
from fraud_assets.dev.inprocess import RANGE_END_TAG, RANGE_START_TAG
from fraud_assets.features.feedback import FEEDBACK_FEATURES
from fraud_assets.lake import CLEAN, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.modeling.champion_snapshot import write_champion
from fraud_assets.serving.labels import LabelLog
from resources.models import ModelTraining
from resources.online import OnlineStore
from tests.support import platform_resources, write_days

pytestmark = pytest.mark.dagster

DAY = 86_400


def test_feedback_features_use_only_labels_known_before_each_row(landing: Path, tmp_path: Path):
    summary = write_days(landing, days=2)
    batches = list(summary.batches)
    data = tmp_path / "data"
    online = OnlineStore(label_log_dir=str(data / "labels"), origin_date="2018-04-01")
    defs = build_definitions(platform_resources(landing, data, online_store=online))
    lake = Lake(*filesystem_for(str(data / "lake")))
    write_champion(lake, None, "fraud-detector")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", batches)
        ingest = defs.resolve_job_def("ingest_batch").execute_in_process(
            tags={RANGE_START_TAG: batches[0], RANGE_END_TAG: batches[-1]},
            instance=instance,
            raise_on_error=False,
        )
        assert ingest.success

        clean = lake.read_by_date(CLEAN, dt.date(2000, 1, 1), dt.date(2100, 1, 1))
        clean = clean.with_columns(
            t=(pl.col("tx_datetime") - pl.lit(online.origin)).dt.total_seconds()
        ).sort("t", "transaction_id")
        # The terminal with the most transactions: label its first one fraud, known at its time.
        terminal = clean.group_by("terminal_id").len().sort("len", "terminal_id")[-1, 0]
        at = clean.filter(pl.col("terminal_id") == terminal)
        first = at.row(0, named=True)
        late = at.row(1, named=True)
        log = LabelLog(data / "labels")
        for row, fraud, known in (
            (first, True, first["t"]),  # known at once
            (late, True, int(clean["t"].max()) + DAY),  # known after every transaction
        ):
            log.append({"transaction_id": row["transaction_id"], "customer_id": row["customer_id"],
                        "terminal_id": row["terminal_id"], "tx_time_seconds": row["t"],
                        "tx_datetime": row["tx_datetime"].isoformat(), "fraud": fraud,
                        "labelled_at": dt.datetime.now(dt.UTC).isoformat(), "source": "desk:ana",
                        "known_at_seconds": known})  # fmt: skip

        # Training with the feedback features before the table exists: a named failure.
        resources = {**defs.resources, "model_training": ModelTraining(feedback_features=True)}
        train = dg.materialize(
            [defs.get_assets_def(dg.AssetKey("challenger_model"))],
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        assert not train.success
        failure = train.get_step_failure_events()[0].event_specific_data.error.message
        assert "materialize that asset" in failure

        one = dg.materialize(
            [defs.get_assets_def(FEEDBACK)],
            resources=defs.resources,
            partition_key=batches[0],
            instance=instance,
        )
        assert one.success
        ranged = defs.resolve_job_def("compute_feedback_features").execute_in_process(
            tags={RANGE_START_TAG: batches[0], RANGE_END_TAG: batches[-1]}, instance=instance
        )
        assert ranged.success
        done = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=FEEDBACK), limit=10
        ).records
        assert sorted(r.partition_key for r in done) == sorted([batches[0], *batches])

    expected = {
        r["transaction_id"]: int(r["t"] > first["t"] and r["t"] - first["t"] < DAY)
        for r in at.iter_rows(named=True)
    }
    features, _ = latest_features(lake, days=2)
    assert set(FEEDBACK_FEATURES) <= set(features.columns)
    got = features.filter(pl.col("terminal_id") == terminal)
    assert dict(zip(got["transaction_id"], got["terminal_confirmed_fraud_1d"], strict=True)) == (
        expected
    )
    assert sum(expected.values()) >= 1  # the test sees a row the label reaches
    others = features.filter(pl.col("terminal_id") != terminal)
    assert others["terminal_confirmed_fraud_7d"].sum() == 0
    assert features[FEEDBACK_FEATURES].null_count().sum_horizontal().item() == 0
