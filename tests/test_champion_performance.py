"""The served champion's performance per labelled batch, and decay-triggered retraining."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from fraud_assets.definitions import build_definitions
from fraud_assets.defs.models import challenger_model, champion_review
from fraud_assets.defs.performance import champion_performance
from fraud_assets.lake import FEATURES, Lake
from fraud_assets.modeling.metrics import average_precision, card_precision_at_k
from fraud_assets.modeling.performance import DecayRule, decay_reason, labels_known
from fraud_assets.modeling.review import training_end
from fraud_assets.modeling.training import score, train_model
from resources.models import ModelTraining
from tests.support import SMALL_TRAINING, platform_resources

pytestmark = pytest.mark.dagster  # trains CatBoost, materializes assets

# -- the decay rule ---------------------------------------------------------------------------

RULE = DecayRule(metric="average_precision", max_drop=0.1, sustained=2)


@pytest.mark.parametrize(
    ("values", "decayed"),
    [
        ([0.7, 0.55, 0.5], True),  # the two newest both more than 0.1 below 0.7
        ([0.5, 0.55, 0.65], False),  # recovered: the newest is within the bound
        ([0.5], False),  # one bad batch is not a trend
        ([0.55, float("nan")], False),  # a batch without fraud is no evidence
        ([0.61, 0.6], False),  # exactly 0.1 below is not beyond the bound (0.6 vs 0.6)
    ],
)
def test_decay_needs_the_bound_crossed_in_enough_batches_in_a_row(values, decayed):
    history = [(f"b{i}", v, 0.7) for i, v in enumerate(values)]
    reason = decay_reason(history, RULE)
    assert (reason is not None) == decayed
    if decayed:
        assert "performance decay" in reason and "b2" in reason


def test_a_floor_makes_a_champion_that_was_always_weak_decay_too():
    history = [("b0", 0.2, 0.25), ("b1", 0.21, 0.25)]
    assert decay_reason(history, RULE) is None
    assert decay_reason(history, dataclasses.replace(RULE, floor=0.3)) is not None


def test_labels_are_known_once_the_batch_is_older_than_the_delay():
    import datetime as dt

    assert labels_known(dt.date(2024, 1, 1), dt.date(2024, 1, 8), 7)
    assert not labels_known(dt.date(2024, 1, 2), dt.date(2024, 1, 8), 7)


# -- the asset and the sensor -----------------------------------------------------------------


@pytest.fixture
def resources(feature_lake: Path, tmp_path: Path) -> dict[str, object]:
    resources = platform_resources(feature_lake / "landing", tmp_path)
    return {**resources, "lake": type(resources["lake"])(url=str(feature_lake / "lake"))}


def _lake(feature_lake: Path) -> Lake:
    from fraud_assets.lake.filesystems import filesystem_for

    return Lake(*filesystem_for(str(feature_lake / "lake")))


def _measure(instance: dg.DagsterInstance, resources, batch: str):  # noqa: ANN001, ANN202
    instance.add_dynamic_partitions("batches", [batch])
    return dg.materialize(
        [champion_performance],
        resources=resources,
        instance=instance,
        partition_key=batch,
        raise_on_error=False,
    )


def test_performance_reports_the_champions_metrics_on_a_labelled_batch(resources, feature_lake):
    lake = _lake(feature_lake)
    dates = lake.dates(FEATURES)
    batch = dates[-10].isoformat()  # older than the 7-day delay: labels known
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [challenger_model, champion_review], resources=resources, instance=instance
        ).success
        result = _measure(instance, resources, batch)
    assert result.success
    meta = result.asset_materializations_for_node("champion_performance")[0].metadata
    registry = resources["models"].registry()  # type: ignore[attr-defined]
    model, threshold = registry.load("champion")
    rows = lake.read_batch(FEATURES, batch)
    s = score(model, rows)
    y = rows["tx_fraud"].to_numpy()
    assert meta["champion_version"].value == registry.champion().version
    assert meta["rows"].value == rows.height and meta["frauds"].value == y.sum()
    assert meta["average_precision"].value == pytest.approx(average_precision(y, s))
    day = rows["tx_datetime"].dt.date()
    cp = card_precision_at_k(day, rows["customer_id"], y, s, k=100)
    assert meta["card_precision_at_100"].value == pytest.approx(cp)
    flagged = s >= threshold
    assert meta["alert_rate"].value == pytest.approx(flagged.mean())
    assert meta["recall"].value == pytest.approx(flagged[y == 1].mean())
    assert meta["fpr"].value == pytest.approx(flagged[y == 0].mean())
    assert 0 < meta["validation_average_precision"].value <= 1


def test_performance_waits_for_the_labels_of_a_recent_batch(resources, feature_lake):
    batch = _lake(feature_lake).dates(FEATURES)[-2].isoformat()
    with dg.instance_for_test() as instance:
        dg.materialize([challenger_model, champion_review], resources=resources, instance=instance)
        result = _measure(instance, resources, batch)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "not all known yet" in str(failure)


def degraded_champion(feature_lake: Path, resources) -> int:  # noqa: ANN001
    """A champion whose model no longer does what its validation record says (as after a shift
    in the fraud patterns): its validation metrics are a good model's, its trees learnt from
    shuffled labels."""
    features = pl.read_parquet(f"{feature_lake}/lake/{FEATURES}/**/*.parquet")
    training = ModelTraining(**SMALL_TRAINING)
    end = training_end(features["tx_datetime"].dt.date().max(), training.review())
    good = train_model(features, end, training.training())
    shuffled = features.with_columns(
        pl.Series("tx_fraud", np.random.default_rng(0).permutation(features["tx_fraud"]))
    )
    bad = train_model(shuffled, end, training.training())
    degraded = dataclasses.replace(bad, validation_metrics=good.validation_metrics)
    registry = resources["models"].registry()
    version = registry.log_challenger(degraded, {"purpose": "degraded on purpose"}).version
    registry.promote(version, "test set-up: a degraded champion")
    return version


def test_a_degraded_champion_triggers_retraining_with_the_reason(resources, feature_lake):
    degraded_champion(feature_lake, resources)
    dates = _lake(feature_lake).dates(FEATURES)
    defs = build_definitions(resources)
    sensor = defs.resolve_sensor_def("retraining_sensor")
    with dg.instance_for_test() as instance:
        for day in dates[-12:-10]:
            result = _measure(instance, resources, day.isoformat())
            assert result.success
            meta = result.asset_materializations_for_node("champion_performance")[0].metadata
            assert meta["average_precision"].value < meta["validation_average_precision"].value
        with dg.build_sensor_context(
            instance=instance, cursor=None, resources=defs.resources, definitions=defs
        ) as context:
            tick = sensor.evaluate_tick(context)
    assert len(tick.run_requests) == 1, tick.skip_message
    reason = tick.run_requests[0].tags["fraud/trigger"]
    assert "performance decay" in reason and dates[-11].isoformat() in reason


def test_a_good_champion_does_not_trigger_retraining(resources, feature_lake):
    dates = _lake(feature_lake).dates(FEATURES)
    defs = build_definitions(resources)
    sensor = defs.resolve_sensor_def("retraining_sensor")
    with dg.instance_for_test() as instance:
        dg.materialize([challenger_model, champion_review], resources=resources, instance=instance)
        values = []
        for day in dates[-12:-10]:
            meta = (
                _measure(instance, resources, day.isoformat())
                .asset_materializations_for_node("champion_performance")[0]
                .metadata
            )
            values.append(meta["average_precision"].value)
        with dg.build_sensor_context(
            instance=instance, cursor=None, resources=defs.resources, definitions=defs
        ) as context:
            tick = sensor.evaluate_tick(context)
    assert not any(math.isnan(v) for v in values)
    assert not tick.run_requests, tick.run_requests
