"""Train → register challenger → review → promote, through the assets, and the retraining sensor."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from fraud_assets.definitions import build_definitions
from fraud_assets.defs.models import challenger_model, champion_review
from fraud_assets.lake import FEATURES
from fraud_assets.modeling.registry import ModelRegistry
from fraud_assets.modeling.review import training_end
from fraud_assets.modeling.training import train_model
from resources.models import ModelTraining
from tests.support import SMALL_TRAINING, platform_resources

pytestmark = pytest.mark.dagster


@pytest.fixture
def resources(feature_lake: Path, tmp_path: Path) -> dict[str, object]:
    """The shared feature lake, and an MLflow store of this test's own."""
    resources = platform_resources(feature_lake / "landing", tmp_path)
    return {**resources, "lake": type(resources["lake"])(url=str(feature_lake / "lake"))}


def registry_of(resources: dict[str, object]) -> ModelRegistry:
    return resources["models"].registry()  # type: ignore[attr-defined]


def train_and_review(resources: dict[str, object], instance: dg.DagsterInstance):
    result = dg.materialize(
        [challenger_model, champion_review], resources=resources, instance=instance
    )
    assert result.success
    return result.asset_materializations_for_node("champion_review")[0].metadata


def all_features(feature_lake: Path) -> pl.DataFrame:
    return pl.read_parquet(f"{feature_lake}/lake/{FEATURES}/**/*.parquet")


def degraded_challenger(feature_lake: Path, registry: ModelRegistry) -> int:
    """A model trained on shuffled labels, registered as the challenger: it learnt nothing."""
    features = all_features(feature_lake)
    shuffled = features.with_columns(
        pl.Series("tx_fraud", np.random.default_rng(0).permutation(features["tx_fraud"]))
    )
    training = ModelTraining(**SMALL_TRAINING)
    data_end = features["tx_datetime"].dt.date().max()
    trained = train_model(shuffled, training_end(data_end, training.review()), training.training())
    return registry.log_challenger(trained, {"purpose": "degraded on purpose"}).version


def test_the_first_model_becomes_champion_and_carries_its_threshold(resources):
    with dg.instance_for_test() as instance:
        meta = train_and_review(resources, instance)
    registry = registry_of(resources)
    champion = registry.champion()
    assert champion is not None and champion.version == 1
    assert meta["decision"].value == "promoted" and "first model" in meta["reason"].value
    assert 0 < champion.threshold < 1 and champion.threshold_policy == "max_recall_at_fpr"
    assert champion.tags["review_decision"] == "promoted"
    assert champion.tags["dagster_run_id"]
    assert "2024-03-0" in champion.tags["dagster_partitions"]  # the batches it learnt from


def test_a_retrained_identical_challenger_is_a_tie_and_is_not_promoted(resources):
    with dg.instance_for_test() as instance:
        train_and_review(resources, instance)
        meta = train_and_review(resources, instance)  # same data, same seed: the same model
    assert meta["decision"].value == "not promoted"
    assert meta["difference"].value == 0 and meta["interval_low"].value <= 0
    assert meta["n_resamples"].value >= 1000
    registry = registry_of(resources)
    assert registry.champion().version == 1 and registry.challenger().version == 2
    assert registry.version(2).tags["review_decision"] == "not promoted"


def test_a_clearly_better_challenger_is_promoted_over_a_degraded_champion(resources, feature_lake):
    registry = registry_of(resources)
    weak = degraded_challenger(feature_lake, registry)
    registry.promote(weak, "test set-up: a champion that learnt nothing")
    with dg.instance_for_test() as instance:
        meta = train_and_review(resources, instance)
    assert meta["decision"].value == "promoted", meta["reason"].value
    assert meta["interval_low"].value > 0
    assert meta["challenger_score"].value > meta["champion_score"].value
    assert registry.champion().version == 2
    assert registry.rollback() == weak  # people can undo a promotion
    assert registry.champion().version == weak


def test_a_degraded_challenger_is_never_promoted(resources, feature_lake):
    with dg.instance_for_test() as instance:
        train_and_review(resources, instance)  # a good champion, v1
        registry = registry_of(resources)
        degraded_challenger(feature_lake, registry)  # v2, alias challenger
        result = dg.materialize(
            [champion_review], resources=resources, instance=instance, selection=[champion_review]
        )
    meta = result.asset_materializations_for_node("champion_review")[0].metadata
    assert meta["decision"].value == "not promoted"
    assert meta["interval_high"].value < 0  # significantly worse, not just "not better"
    assert registry.champion().version == 1


# -- the retraining sensor --------------------------------------------------------------------


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def("retraining_sensor")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        return sensor.evaluate_tick(context)


def features_landed(instance: dg.DagsterInstance, *batches: str) -> None:
    instance.add_dynamic_partitions("batches", list(batches))
    for batch in batches:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("transaction_features", partition=batch)
        )


def test_the_retraining_sensor_requests_one_run_per_new_feature_batch_and_never_two_at_once(
    resources,
):
    defs = build_definitions(resources)
    with dg.instance_for_test() as instance:
        first = tick(defs, instance, None)
        assert not first.run_requests and "No new feature batch" in first.skip_message

        features_landed(instance, "2024-04-11")
        new = tick(defs, instance, first.cursor)
        assert len(new.run_requests) == 1
        assert "2024-04-11" in new.run_requests[0].tags["fraud/trigger"]

        again = tick(defs, instance, new.cursor)  # a repeated tick asks for nothing new
        assert not again.run_requests

        features_landed(instance, "2024-04-12")
        job = defs.resolve_job_def("train_and_review")
        running = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
        busy = tick(defs, instance, new.cursor)
        assert not busy.run_requests and running.run_id in busy.skip_message

        instance.report_run_canceled(running)
        ingest = defs.resolve_job_def("ingest_batch")
        landing = instance.create_run_for_job(ingest, status=dg.DagsterRunStatus.STARTED)
        burst = tick(defs, instance, new.cursor)  # a burst trains once, when its runs are done
        assert not burst.run_requests and landing.run_id in burst.skip_message

        instance.report_run_canceled(landing)
        # A UI backfill or a manual materialization of the batch assets runs as an asset job.
        asset_job = defs.resolve_implicit_global_asset_job_def()
        backfill = instance.create_run_for_job(
            asset_job,
            asset_selection=frozenset({dg.AssetKey("clean_transactions")}),
            status=dg.DagsterRunStatus.STARTED,
        )
        rewriting = tick(defs, instance, new.cursor)
        assert not rewriting.run_requests and backfill.run_id in rewriting.skip_message

        instance.report_run_canceled(backfill)
        after = tick(defs, instance, new.cursor)  # the waiting batch now triggers its run
        assert len(after.run_requests) == 1
        assert after.run_requests[0].run_key != new.run_requests[0].run_key


def test_the_retraining_sensor_waits_until_the_lake_holds_a_whole_training_window(resources):
    longer = ModelTraining(**{**SMALL_TRAINING, "window_days": 60})
    defs = build_definitions({**resources, "model_training": longer})
    with dg.instance_for_test() as instance:
        features_landed(instance, "2024-04-11")
        result = tick(defs, instance, None)
    assert not result.run_requests
    assert "42 day(s) of features; training needs 81" in result.skip_message
